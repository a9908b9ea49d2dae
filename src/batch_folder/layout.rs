//! Where everything in a batch folder lives: the one place that builds its paths.

use std::fmt;

/// `batch.json`: the current generation; writing it is the commit.
pub const MANIFEST: &str = "batch.json";
/// The lock a writer holds (inside the folder's housekeeping, hidden from listings).
pub const LOCK: &str = ".bedrock-batch/lock";
/// The OpenAI output file of the last collection, by default.
pub const RESULTS_OUTPUT: &str = "results/output.jsonl";
/// The OpenAI error file of the last collection, by default.
pub const RESULTS_ERRORS: &str = "results/errors.jsonl";
/// The record of the last collection of results.
pub const RESULTS_RECORD: &str = "results/report.json";
/// The folder of results.
pub const RESULTS: &str = "results/";
/// The folder of the results written per input (`--results-per-input`).
pub const RESULTS_BY_INPUT: &str = "results/by-input/";

/// Where the output and error lines of input `index` (named `name`: a path or URI) go when the
/// results are written per input: `results/by-input/NNNNNN-STEM.output.jsonl` and
/// `….errors.jsonl`, the index first (unique, in input order), then the input's file name without
/// `.jsonl`, kept to `[A-Za-z0-9._-]` and 100 bytes.
pub fn input_results_paths(index: u32, name: &str) -> (String, String) {
    let file = name.rsplit('/').next().unwrap_or(name);
    let stem = file.strip_suffix(".jsonl").unwrap_or(file);
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let base = format!("{RESULTS_BY_INPUT}{index:06}-{stem}");
    (
        format!("{base}.output.jsonl"),
        format!("{base}.errors.jsonl"),
    )
}
/// What every generation's folder name starts with.
const GENERATION_PREFIX: &str = "gen-";

/// The paths below the folder that are its own: what a clean-up may remove and a replacement
/// (`--overwrite`) removes. Anything else in the folder (a server's records beside it, a user's
/// notes) is left alone.
pub fn owned_prefixes() -> Vec<String> {
    vec![
        GENERATION_PREFIX.to_owned(),
        RESULTS.to_owned(),
        MANIFEST.to_owned(),
    ]
}

/// Whether the object at `rel` is one this crate writes — `batch.json`, results, a generation's
/// own files — and so one whose incomplete upload a clean-up may abort. A generation's
/// `output/` is Bedrock's: a running job may be uploading there.
pub fn is_own_object(rel: &str) -> bool {
    if rel == MANIFEST || rel.starts_with(RESULTS) {
        return true;
    }
    match rel.split_once('/') {
        Some((generation, rest)) => {
            Generation::parse(generation).is_some() && !rest.starts_with("output/")
        }
        None => false,
    }
}

/// One conversion into a folder: `gen-YYYYMMDDTHHMMSSZ-xxxxxx` (the UTC time it started and six
/// random hex digits). Everything the conversion writes lives under `DEST/<generation>/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(String);

impl Generation {
    /// A new generation, named after `now` (Unix seconds).
    pub fn new(now: u64) -> Generation {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now);
        h.write_u32(std::process::id());
        let stamp = crate::aws::utc_stamp(now);
        Generation(format!(
            "{GENERATION_PREFIX}{stamp}-{:06x}",
            h.finish() & 0xff_ffff
        ))
    }

    /// Reads a generation name; `None` unless it has exactly the shape [`Generation::new`] makes
    /// (so that it is safe as a path segment, in an S3 key and in a Bedrock URI).
    ///
    /// ```
    /// use bedrock_batch::batch_folder::Generation;
    /// assert!(Generation::parse("gen-20261129T181256Z-3f9a2c").is_some());
    /// assert!(Generation::parse("gen-20261129T181256Z-3f9a2c/../x").is_none());
    /// assert!(Generation::parse("../gen-20261129T181256Z-3f9a2c").is_none());
    /// ```
    pub fn parse(name: &str) -> Option<Generation> {
        let rest = name.strip_prefix(GENERATION_PREFIX)?;
        let b = rest.as_bytes();
        let ok = b.len() == 23
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        ok.then(|| Generation(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag its recordIds carry.
    pub fn record_tag(&self) -> crate::record::RecordTag {
        crate::record::RecordTag::of(&self.0)
    }

    /// The generation's folder: `gen-…/`.
    pub fn prefix(&self) -> String {
        format!("{}/", self.0)
    }

    /// The record file of shard `index` of job `job`.
    pub fn shard_path(&self, job: u32, index: u32) -> String {
        format!("{}/input/job{job:03}/{index:05}.jsonl", self.0)
    }

    /// The input prefix of job `job`: what CreateModelInvocationJob reads. Each job has its
    /// own, so a job never reads another job's records, nor another generation's.
    pub fn job_input_prefix(&self, job: u32) -> String {
        format!("{}/input/job{job:03}/", self.0)
    }

    /// The ledger file of shard `index`.
    pub fn ids_path(&self, index: u32) -> String {
        format!("{}/ids/{index:05}.ids", self.0)
    }

    /// The rejected input lines.
    pub fn rejected_path(&self) -> String {
        format!("{}/rejected.jsonl", self.0)
    }

    /// The folder of job records.
    pub fn jobs_prefix(&self) -> String {
        format!("{}/jobs/", self.0)
    }

    /// The record of the Bedrock job submitted for the folder's job `index`.
    pub fn job_record_path(&self, index: u32) -> String {
        format!("{}/jobs/job{index:03}.json", self.0)
    }

    /// The record that the batch was cancelled: none of its jobs not yet submitted ever will be.
    pub fn cancel_record_path(&self) -> String {
        format!("{}/cancelled.json", self.0)
    }

    /// Where the generation's jobs write (Bedrock adds `<job-id>/`).
    pub fn output_prefix(&self) -> String {
        format!("{}/output/", self.0)
    }

    /// Everything of the generation that holds requests or answers — records, ledger, rejected
    /// lines, Bedrock's output — as `/`-ended prefixes and file paths; what is left without them
    /// (`batch.json`, job records, the results record) holds counts and ids only.
    pub fn request_data(&self) -> [String; 4] {
        [
            format!("{}/input/", self.0),
            format!("{}/ids/", self.0),
            self.output_prefix(),
            self.rejected_path(),
        ]
    }

    /// Where Bedrock writes the output of job `job_id`.
    pub fn job_output_prefix(&self, job_id: &str) -> String {
        format!("{}/output/{job_id}/", self.0)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `id` is a Bedrock job id as its ARNs end (`[a-z0-9]{12}`): safe as a path segment.
pub fn is_job_id(id: &str) -> bool {
    id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_per_input_are_named_after_the_input_and_stay_below_results() {
        let (ok, err) = input_results_paths(7, "s3://b/exports/part-00007.jsonl");
        assert_eq!(ok, "results/by-input/000007-part-00007.output.jsonl");
        assert_eq!(err, "results/by-input/000007-part-00007.errors.jsonl");
        let (ok, _) = input_results_paths(0, "../a b/..");
        assert_eq!(ok, "results/by-input/000000-...output.jsonl");
        let (ok, _) = input_results_paths(1, &format!("/x/{}", "é".repeat(300)));
        assert!(ok.starts_with(RESULTS_BY_INPUT) && !ok[RESULTS_BY_INPUT.len()..].contains('/'));
        assert!(ok.len() < 140);
    }

    #[test]
    fn new_generations_parse_and_differ() {
        let a = Generation::new(1_764_440_000);
        assert!(a.as_str().starts_with("gen-20251129T"), "{a}");
        assert_eq!(Generation::parse(a.as_str()), Some(a.clone()));
        let b = Generation::new(1_764_440_000);
        assert_ne!(a, b, "two conversions in one second still differ");
        for bad in [
            "gen-",
            "gen-20251129T181256Z-3f9a2C",
            "gen-20251129T181256Z-3f9a2",
            "gen-2025112xT181256Z-3f9a2c",
            "gen-20251129T181256Z-3f9a2c/",
            "input",
        ] {
            assert_eq!(Generation::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bedrocks_output_is_not_the_folders_own() {
        let g = Generation::parse("gen-20261129T181256Z-3f9a2c").unwrap();
        for own in [
            MANIFEST.to_owned(),
            RESULTS_OUTPUT.to_owned(),
            RESULTS_RECORD.to_owned(),
            g.shard_path(0, 3),
            g.ids_path(3),
            g.rejected_path(),
            g.job_record_path(1),
        ] {
            assert!(is_own_object(&own), "{own}");
        }
        for theirs in [
            format!("{}x.jsonl.out", g.job_output_prefix("abcdefghij12")),
            format!("{}manifest.json.out", g.output_prefix()),
            "notes.txt".to_owned(),
            "gen-not-a-generation/ids/00000.ids".to_owned(),
            "batch.json.bak".to_owned(),
        ] {
            assert!(!is_own_object(&theirs), "{theirs}");
        }
    }

    #[test]
    fn every_path_is_below_its_generation() {
        let g = Generation::parse("gen-20261129T181256Z-3f9a2c").unwrap();
        for p in [
            g.shard_path(2, 7),
            g.job_input_prefix(2),
            g.ids_path(7),
            g.rejected_path(),
            g.job_record_path(2),
            g.output_prefix(),
            g.job_output_prefix("abcdefghij12"),
        ] {
            assert!(p.starts_with(&g.prefix()), "{p}");
        }
        assert_eq!(
            g.shard_path(2, 7),
            "gen-20261129T181256Z-3f9a2c/input/job002/00007.jsonl"
        );
        assert!(g.shard_path(2, 7).starts_with(&g.job_input_prefix(2)));
        assert!(is_job_id("abcdefghij12"));
        assert!(!is_job_id("../../x12345"));
    }
}
