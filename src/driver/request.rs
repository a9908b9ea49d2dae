//! What CreateModelInvocationJob is given, checked against Bedrock's rules before it is sent, and
//! the idempotency token that makes a repeated submit return the same job.

use sha2::{Digest, Sha256};

/// Everything a CreateModelInvocationJob request carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobRequest {
    /// The job's name (Bedrock's pattern: see [`check_job_name`]).
    pub job_name: String,
    /// The service role Bedrock assumes to read the input and write the output.
    pub role_arn: String,
    /// The model (foundation model id, inference profile id, or an ARN).
    pub model_id: String,
    /// `s3://…/` the records are read from.
    pub input_uri: String,
    /// `s3://…/` the results are written under (Bedrock adds `<job-id>/`).
    pub output_uri: String,
    /// KMS key for the output.
    pub kms_key_id: Option<String>,
    /// Hours before Bedrock stops the job (24–168).
    pub timeout_hours: i32,
    /// Tags on the job.
    pub tags: Vec<(String, String)>,
    /// VPC subnets (with `security_group_ids`).
    pub subnet_ids: Vec<String>,
    /// VPC security groups (with `subnet_ids`).
    pub security_group_ids: Vec<String>,
    /// `InvokeModel` or `Converse`.
    pub invocation_type: String,
    /// The idempotency token.
    pub client_request_token: String,
}

/// A request field Bedrock would refuse, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidRequest {
    /// The field (as the CLI calls it).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidRequest {
    InvalidRequest {
        field,
        message: message.into(),
    }
}

/// Bedrock's job-name rule: 1–63 characters, a letter or digit first, then letters, digits, `-`,
/// `+` and `.`.
pub fn check_job_name(name: &str) -> Result<(), InvalidRequest> {
    let ok_len = (1..=63).contains(&name.len());
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b));
    if ok_len && first_ok && rest_ok {
        Ok(())
    } else {
        Err(invalid(
            "--job-name",
            format!("{name:?} is not a valid Bedrock job name (1-63 characters: a letter or digit, then letters, digits, '-', '+', '.')"),
        ))
    }
}

/// Bedrock's role-ARN rule: `arn:aws[-partition]:iam::[account]:role/NAME`, at most 2048
/// characters.
pub fn check_role_arn(arn: &str) -> Result<(), InvalidRequest> {
    let bad = || {
        invalid(
            "--role-arn",
            format!("{arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)"),
        )
    };
    if arn.len() > 2048 {
        return Err(bad());
    }
    let rest = arn.strip_prefix("arn:aws").ok_or_else(bad)?;
    // An optional "-partition" (aws-cn, aws-us-gov) without colons.
    let rest = match rest.strip_prefix('-') {
        Some(p) => {
            let (partition, rest) = p.split_once(':').ok_or_else(bad)?;
            if partition.is_empty() {
                return Err(bad());
            }
            rest
        }
        None => rest.strip_prefix(':').ok_or_else(bad)?,
    };
    let rest = rest.strip_prefix("iam::").ok_or_else(bad)?;
    let (account, role) = rest.split_once(":role/").ok_or_else(bad)?;
    let account_ok =
        account.is_empty() || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    if !account_ok || role.is_empty() || role.contains('\n') {
        return Err(bad());
    }
    Ok(())
}

/// Bedrock's S3 URI rule: a bucket name, then key segments of letters, digits and
/// `- ! _ * ' ( ) .` only (no spaces, `=`, `+`, `:`, `@`, `%`), at most 1024 characters.
pub fn check_s3_uri(field: &'static str, uri: &str) -> Result<(), InvalidRequest> {
    let bad = |why: &str| Err(invalid(field, format!("{uri}: {why}")));
    let Some(rest) = uri.strip_prefix("s3://") else {
        return bad("not an s3:// URI");
    };
    if uri.len() > 1024 {
        return bad("longer than the 1024 characters Bedrock accepts");
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return bad("Bedrock accepts bucket names of 3-63 lowercase letters, digits, '-' and '.'");
    }
    let key = key.strip_suffix('/').unwrap_or(key);
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-!_*'().".contains(&b))
    };
    if !key.is_empty() && !key.split('/').all(segment_ok) {
        return bad("Bedrock accepts only letters, digits and - ! _ * ' ( ) . in key names (no spaces, '=', '+', ':', '@', '%', or '//'); stage the batch under such a prefix");
    }
    Ok(())
}

/// Parses a completion window (`24h`, `72h`, `2d`, `7d`) into Bedrock's timeout in hours (24–168).
pub fn timeout_hours(window: &str) -> Result<i32, InvalidRequest> {
    let w = window.trim();
    let (digits, per) = if let Some(d) = w.strip_suffix('h') {
        (d, 1)
    } else if let Some(d) = w.strip_suffix('d') {
        (d, 24)
    } else {
        (w, 1)
    };
    let hours = digits
        .parse::<i32>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .ok_or_else(|| {
            invalid(
                "--completion-window",
                format!("{window:?} is not a duration such as 24h or 7d"),
            )
        })?;
    if !(24..=168).contains(&hours) {
        return Err(invalid(
            "--completion-window",
            format!("{window} is {hours} hours; Bedrock batch jobs take 24 to 168 hours (24h-7d)"),
        ));
    }
    Ok(hours)
}

/// The completion window OpenAI shows for a timeout.
pub fn completion_window(timeout_hours: i32) -> String {
    format!("{timeout_hours}h")
}

/// Parses a `KEY=VALUE` tag and checks it against Bedrock's rules.
pub fn parse_tag(tag: &str) -> Result<(String, String), InvalidRequest> {
    let (key, value) = tag
        .split_once('=')
        .ok_or_else(|| invalid("--tag", format!("{tag:?} is not KEY=VALUE")))?;
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "._:/=+@-".contains(c))
    };
    if key.is_empty() || key.chars().count() > 128 || !allowed(key) {
        return Err(invalid(
            "--tag",
            format!("tag key {key:?}: 1-128 letters, digits, spaces and . _ : / = + @ -"),
        ));
    }
    if value.chars().count() > 256 || !allowed(value) {
        return Err(invalid(
            "--tag",
            format!("tag value {value:?}: at most 256 letters, digits, spaces and . _ : / = + @ -"),
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl JobRequest {
    /// Checks every field Bedrock checks, so a mistake is reported before anything is sent.
    pub fn validate(&self) -> Result<(), InvalidRequest> {
        check_job_name(&self.job_name)?;
        check_role_arn(&self.role_arn)?;
        if self.model_id.is_empty() || self.model_id.len() > 2048 {
            return Err(invalid("--model", "a model id of 1-2048 characters"));
        }
        check_s3_uri("input S3 URI", &self.input_uri)?;
        check_s3_uri("output S3 URI", &self.output_uri)?;
        if !(24..=168).contains(&self.timeout_hours) {
            return Err(invalid(
                "--completion-window",
                format!("{} hours is outside 24-168", self.timeout_hours),
            ));
        }
        if self.tags.len() > 200 {
            return Err(invalid("--tag", "at most 200 tags"));
        }
        let vpc_id = |s: &String| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if self.subnet_ids.is_empty() != self.security_group_ids.is_empty() {
            return Err(invalid(
                "--subnet-id",
                "a VPC configuration needs both --subnet-id and --security-group-id",
            ));
        }
        if self.subnet_ids.len() > 16 || !self.subnet_ids.iter().all(vpc_id) {
            return Err(invalid(
                "--subnet-id",
                "1-16 ids of letters, digits and '-'",
            ));
        }
        if self.security_group_ids.len() > 5 || !self.security_group_ids.iter().all(vpc_id) {
            return Err(invalid(
                "--security-group-id",
                "1-5 ids of letters, digits and '-'",
            ));
        }
        if !matches!(self.invocation_type.as_str(), "InvokeModel" | "Converse") {
            return Err(invalid(
                "invocation type",
                format!("{:?}: InvokeModel or Converse", self.invocation_type),
            ));
        }
        Ok(())
    }

    /// The idempotency token for this request on a batch folder whose `batch.json` is
    /// `manifest`: the same folder submitted with the same settings always gets the same token, so
    /// Bedrock returns the job it already started instead of starting (and billing) a second one;
    /// changing a setting (say, a corrected role) gives a new job.
    pub fn token_for(&self, manifest: &[u8]) -> String {
        let mut h = Sha256::new();
        let mut field = |s: &[u8]| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s);
        };
        field(manifest);
        for s in [
            &self.job_name,
            &self.role_arn,
            &self.model_id,
            &self.input_uri,
            &self.output_uri,
            self.kms_key_id.as_deref().unwrap_or(""),
            &self.timeout_hours.to_string(),
            &self.invocation_type,
        ] {
            field(s.as_bytes());
        }
        for (k, v) in &self.tags {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        for list in [&self.subnet_ids, &self.security_group_ids] {
            field(list.join(",").as_bytes());
        }
        let digest = h.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("bedrock-batch-{hex}")
    }
}

/// A job name made from a batch folder: its last path segment (cleaned to Bedrock's pattern) and
/// the conversion's time, plus `-jobNNN` when the folder holds several jobs. The same folder always
/// gets the same name.
pub fn default_job_name(folder_uri: &str, created_at: u64, job: u32, jobs: usize) -> String {
    // The folder's own name, not the bucket's.
    let path = match folder_uri.strip_prefix("s3://") {
        Some(rest) => rest.split_once('/').map_or("", |(_, key)| key),
        None => folder_uri,
    };
    let segment = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let mut base: String = segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base = "bedrock-batch".to_owned();
    }
    let stamp = aws_sdk_bedrock::primitives::DateTime::from_secs(created_at as i64)
        .fmt(aws_sdk_bedrock::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
        .replace(['-', ':'], "");
    let mut name = format!("{base}-{stamp}");
    if jobs > 1 {
        name.push_str(&format!("-job{job:03}"));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> JobRequest {
        JobRequest {
            job_name: "nightly-1".into(),
            role_arn: "arn:aws:iam::123456789012:role/BedrockBatch".into(),
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            input_uri: "s3://bkt/p/input/".into(),
            output_uri: "s3://bkt/p/output/".into(),
            kms_key_id: None,
            timeout_hours: 24,
            tags: vec![],
            subnet_ids: vec![],
            security_group_ids: vec![],
            invocation_type: "InvokeModel".into(),
            client_request_token: String::new(),
        }
    }

    #[test]
    fn job_names_follow_bedrocks_pattern() {
        for good in ["a", "nightly-run.2+x", "A1", &"x".repeat(63), "a--b"] {
            assert!(check_job_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a b", "a_b", "ä", &"x".repeat(64)] {
            let e = check_job_name(bad).unwrap_err();
            assert_eq!(e.field, "--job-name", "{bad}");
        }
    }

    #[test]
    fn role_arns_follow_bedrocks_pattern() {
        for good in [
            "arn:aws:iam::123456789012:role/BedrockBatch",
            "arn:aws:iam:::role/x",
            "arn:aws-cn:iam::123456789012:role/path/name",
            "arn:aws-us-gov:iam::123456789012:role/r",
        ] {
            assert!(check_role_arn(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "BedrockBatch",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:s3:::bucket",
            "arn:aws-:iam::123456789012:role/x",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn completion_windows_become_hours_within_bedrocks_range() {
        assert_eq!(timeout_hours("24h"), Ok(24));
        assert_eq!(timeout_hours("72"), Ok(72));
        assert_eq!(timeout_hours("7d"), Ok(168));
        assert_eq!(completion_window(48), "48h");
        for bad in ["23h", "8d", "1w", "", "h", "-24h", "99999999999h"] {
            assert!(timeout_hours(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_key_value_pairs_in_bedrocks_charset() {
        assert_eq!(
            parse_tag("team=ml ops"),
            Ok(("team".into(), "ml ops".into()))
        );
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=v").is_err());
        assert!(parse_tag("k=v#").is_err());
    }

    #[test]
    fn s3_uris_follow_bedrocks_pattern() {
        for good in [
            "s3://bucket/p/input/",
            "s3://my.bucket-1",
            "s3://bkt/a!b_(c)*'.d/",
        ] {
            assert!(check_s3_uri("f", good).is_ok(), "{good}");
        }
        for bad in [
            "s3://Bucket/p/",
            "s3://b/p/",
            "s3://bucket/run 1/",
            "s3://bucket/a=b/",
            "s3://bucket/a//b/",
            "/tmp/x/",
        ] {
            assert!(check_s3_uri("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_checks_every_field() {
        assert_eq!(request().validate(), Ok(()));
        let mut r = request();
        r.subnet_ids = vec!["subnet-1".into()];
        assert_eq!(r.validate().unwrap_err().field, "--subnet-id");
        r.security_group_ids = vec!["sg-1".into()];
        assert_eq!(r.validate(), Ok(()));
        r.security_group_ids = vec!["sg_1".into()];
        assert_eq!(r.validate().unwrap_err().field, "--security-group-id");
        let mut r = request();
        r.timeout_hours = 200;
        assert_eq!(r.validate().unwrap_err().field, "--completion-window");
        let mut r = request();
        r.invocation_type = "Stream".into();
        assert!(r.validate().is_err());
    }

    #[test]
    fn tokens_depend_on_the_folder_and_every_setting() {
        let r = request();
        let token = r.token_for(b"{\"a\":1}");
        assert_eq!(token, r.token_for(b"{\"a\":1}"));
        assert!(token.len() <= 256);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_ne!(token, r.token_for(b"{\"a\":2}"));
        let mut other = r.clone();
        other.role_arn = "arn:aws:iam::123456789012:role/Other".into();
        assert_ne!(token, other.token_for(b"{\"a\":1}"));
        let mut other = r.clone();
        other.tags = vec![("k".into(), "v".into())];
        assert_ne!(token, other.token_for(b"{\"a\":1}"));
    }

    #[test]
    fn default_names_are_stable_and_valid() {
        let name = default_job_name("s3://bucket/batches/run 1/", 1_700_000_000, 0, 1);
        assert_eq!(name, "run-1-20231114T221320Z");
        assert!(check_job_name(&name).is_ok());
        let name = default_job_name("s3://bucket/", 1_700_000_000, 2, 3);
        assert_eq!(name, "bedrock-batch-20231114T221320Z-job002");
        assert!(check_job_name(&name).is_ok());
        let name = default_job_name("s3://b/_x/", 0, 0, 1);
        assert!(check_job_name(&name).is_ok(), "{name}");
    }
}
