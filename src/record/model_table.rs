//! The model table: every model this crate knows, as data — which body family writes its
//! records, whether and where Bedrock batches it, and what its documentation says about its
//! settings, each line with its sources.
//!
//! The table is `models.toml` beside this file, compiled in ([`ModelTable::builtin`]); a file of
//! the same shape ([`ModelTable::with_file`], `--models FILE`, `models` in serve's config) adds
//! lines that take precedence. A model id is looked up without its ARN and inference-profile
//! prefix, by the longest `id` that begins it, so a vendor's catch-all and one model's line live
//! side by side and adding a model is one line.
//!
//! Why data and not code: the set of batch-capable models changes every few weeks, and each
//! change is a fact from a documentation page; keeping the fact, its source and what the page
//! does not say (`unverified`) together is what lets a reader check it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use super::family::{bare_model_id, profile_prefix};
use super::{Family, Limits};

/// The table compiled into the crate.
const BUILTIN: &str = include_str!("models.toml");

/// A batch job's `modelInvocationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Invocation {
    /// The model's own InvokeModel body.
    InvokeModel,
    /// The Converse API's body.
    Converse,
}

/// A kind of input a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    /// Text.
    Text,
    /// Images.
    Image,
    /// Video.
    Video,
    /// Documents (PDF and the like).
    Document,
    /// Audio.
    Audio,
}

/// What a model's (or a family's) documentation says about its settings; absent where it says
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The largest number of output tokens.
    pub max_tokens: Option<u64>,
    /// The smallest and largest temperature.
    #[serde(default, deserialize_with = "range")]
    pub temperature: Option<[f64; 2]>,
    /// The largest top_k.
    pub top_k: Option<u64>,
    /// The most stop sequences.
    pub stop: Option<usize>,
    /// The embedding sizes it makes.
    pub dimensions: Option<Vec<u64>>,
    /// The inputs it takes.
    pub media: Option<Vec<Media>>,
    /// Whether it takes a reasoning effort.
    pub reasoning: Option<bool>,
    /// The job types that batch it.
    pub invocation: Option<Vec<Invocation>>,
    /// Names in the table's `[sources]` where the above is documented.
    #[serde(default)]
    pub source: Vec<String>,
}

impl Settings {
    /// These settings with `over`'s where it has them.
    fn overlaid(&self, over: &Settings) -> Settings {
        Settings {
            max_tokens: over.max_tokens.or(self.max_tokens),
            temperature: over.temperature.or(self.temperature),
            top_k: over.top_k.or(self.top_k),
            stop: over.stop.or(self.stop),
            dimensions: over.dimensions.clone().or_else(|| self.dimensions.clone()),
            media: over.media.clone().or_else(|| self.media.clone()),
            reasoning: over.reasoning.or(self.reasoning),
            invocation: over.invocation.clone().or_else(|| self.invocation.clone()),
            source: over.source.clone(),
        }
    }
}

/// One line of the table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: String,
    name: String,
    family: Option<String>,
    native: Option<String>,
    batch: Option<bool>,
    why: Option<String>,
    regions: Option<Vec<String>>,
    #[serde(default)]
    profiles: Vec<String>,
    unverified: Option<String>,
    golden: Option<String>,
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "range")]
    temperature: Option<[f64; 2]>,
    top_k: Option<u64>,
    stop: Option<usize>,
    dimensions: Option<Vec<u64>>,
    media: Option<Vec<Media>>,
    reasoning: Option<bool>,
    invocation: Option<Vec<Invocation>>,
    #[serde(default)]
    source: Vec<String>,
}

/// A table file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    models: Vec<Line>,
    #[serde(default)]
    families: BTreeMap<String, Settings>,
    #[serde(default)]
    sources: BTreeMap<String, String>,
}

/// One model (or every model whose id begins with [`ModelEntry::id`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// The start of the bare model ids this line is for.
    pub id: String,
    /// The model's name.
    pub name: String,
    /// The family that writes its records; `None` when Bedrock cannot batch it.
    pub family: Option<Family>,
    /// A family that may write InvokeModel records for it instead (chosen with `--family`).
    pub native: Option<Family>,
    /// Why Bedrock cannot batch it.
    pub why_not: Option<String>,
    /// Regions where the bare model id batches (empty: only through a profile); `None` when not
    /// known.
    pub regions: Option<Vec<String>>,
    /// Cross-Region inference-profile prefixes that batch it (`us`, `global` …).
    pub profiles: Vec<String>,
    /// What its documentation states (the family's values where it says nothing of its own).
    pub settings: Settings,
    /// What its own line states.
    own: Settings,
    /// Where the figures are documented (the sources' text, not their names).
    pub sources: Vec<String>,
    /// What the documentation does not say or contradicts.
    pub unverified: Option<String>,
    /// The fixture stem in `fixtures/families/` of its body shape.
    pub golden: String,
}

impl ModelEntry {
    /// The job types that batch it.
    pub fn invocations(&self) -> &[Invocation] {
        self.settings.invocation.as_deref().unwrap_or(&[])
    }
}

/// The table could not be read; names the line (by its `id`) and the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// Not TOML of the table's shape.
    #[error("the model table: {0}")]
    Syntax(String),
    /// A line is wrong.
    #[error("the model table, model {id:?}: {fault}")]
    Line {
        /// The line's `id`.
        id: String,
        /// What is wrong.
        fault: String,
    },
}

/// The model id names no model Bedrock can batch (or none the table knows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model {model:?}: {reason}")]
pub struct UnknownModel {
    /// The model id given.
    pub model: String,
    /// Why it is not mapped, with the close matches.
    pub reason: String,
}

/// What a model id resolves to.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'t> {
    /// The family that writes its records.
    pub family: Family,
    /// Its line in the table.
    pub entry: &'t ModelEntry,
}

impl Resolved<'_> {
    /// What the user should be told about the choice, if anything: a Converse job chosen because
    /// AWS documents no InvokeModel body for the model.
    pub fn notice(&self, model_id: &str) -> Option<String> {
        if self.family != Family::Converse {
            return None;
        }
        let instead = match self.entry.native {
            Some(native) => format!(
                "; --family {native} writes InvokeModel records instead (unverified for this model)"
            ),
            None => String::new(),
        };
        Some(format!(
            "{model_id} ({}): AWS documents no InvokeModel body this tool maps for it, so its records are a Converse job (Converse jobs refuse tools){instead}",
            self.entry.name
        ))
    }
}

/// The model table (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTable {
    entries: Vec<ModelEntry>,
    families: BTreeMap<Family, Settings>,
    sources: BTreeMap<String, String>,
}

impl ModelTable {
    /// The table compiled into the crate.
    pub fn builtin() -> &'static ModelTable {
        static TABLE: OnceLock<ModelTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            ModelTable::parse(BUILTIN, None).expect("the built-in model table is valid (tested)")
        })
    }

    /// The built-in table with the lines of `text` (a table file) taking precedence: a line
    /// with the same `id` replaces the built-in one; family settings and sources are added to
    /// (and replace) the built-in ones.
    pub fn with_file(text: &str) -> Result<ModelTable, TableError> {
        ModelTable::parse(text, Some(ModelTable::builtin()))
    }

    fn parse(text: &str, base: Option<&ModelTable>) -> Result<ModelTable, TableError> {
        let file: TableFile =
            toml::from_str(text).map_err(|e| TableError::Syntax(e.to_string()))?;
        let mut table = base.cloned().unwrap_or(ModelTable {
            entries: Vec::new(),
            families: BTreeMap::new(),
            sources: BTreeMap::new(),
        });
        table.sources.extend(file.sources);
        for (name, settings) in file.families {
            let family = Family::from_name(&name).ok_or_else(|| TableError::Line {
                id: format!("[families.{name}]"),
                fault: format!("no family is called {name:?} ({})", family_names()),
            })?;
            let merged = match table.families.get(&family) {
                Some(old) => {
                    let mut s = old.overlaid(&settings);
                    if s.source.is_empty() {
                        s.source = old.source.clone();
                    }
                    s
                }
                None => settings,
            };
            table.families.insert(family, merged);
        }
        for &family in Family::ALL {
            let settings = table
                .families
                .get(&family)
                .ok_or_else(|| TableError::Line {
                    id: format!("[families.{family}]"),
                    fault: "every family needs its settings".to_owned(),
                })?;
            check_settings(&format!("[families.{family}]"), settings, &table.sources)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for line in file.models {
            if !seen.insert(line.id.clone()) {
                return Err(TableError::Line {
                    id: line.id,
                    fault: "a second line for this id".to_owned(),
                });
            }
            let entry = table.entry_from(line)?;
            table.entries.retain(|e| e.id != entry.id);
            table.entries.push(entry);
        }
        Ok(table)
    }

    /// A line of the file as an entry, checked.
    fn entry_from(&self, line: Line) -> Result<ModelEntry, TableError> {
        let id = line.id.clone();
        let fault = |fault: String| TableError::Line {
            id: id.clone(),
            fault,
        };
        if line.id.is_empty()
            || line.id != bare_model_id(&line.id)
            || line.id.starts_with("arn:")
            || check_model_id(&line.id).is_err()
        {
            return Err(fault(
                "an id is the start of a bare model id (lowercase letters, digits and . - : _; no ARN, no profile prefix)".to_owned(),
            ));
        }
        let family_named = |name: &Option<String>| -> Result<Option<Family>, TableError> {
            name.as_deref()
                .map(|n| {
                    Family::from_name(n).ok_or_else(|| {
                        fault(format!("no family is called {n:?} ({})", family_names()))
                    })
                })
                .transpose()
        };
        let family = family_named(&line.family)?;
        let native = family_named(&line.native)?;
        if native == Some(Family::Converse) {
            return Err(fault(
                "`native` names an InvokeModel family (converse is `family`)".to_owned(),
            ));
        }
        let batch = line.batch.unwrap_or(true);
        let why_not = match (batch, family, line.why) {
            (true, Some(_), None) => None,
            (true, None, _) => {
                return Err(fault("a batch-capable model needs a family".to_owned()))
            }
            (true, Some(_), Some(_)) => {
                return Err(fault("`why` is for models Bedrock cannot batch".to_owned()))
            }
            (false, None, Some(why)) => Some(why),
            (false, _, None) => {
                return Err(fault("a model Bedrock cannot batch needs `why`".to_owned()))
            }
            (false, Some(_), Some(_)) => {
                return Err(fault(
                    "a model Bedrock cannot batch has no family".to_owned(),
                ))
            }
        };
        let own = Settings {
            max_tokens: line.max_tokens,
            temperature: line.temperature,
            top_k: line.top_k,
            stop: line.stop,
            dimensions: line.dimensions,
            media: line.media,
            reasoning: line.reasoning,
            invocation: line.invocation,
            source: line.source,
        };
        if own.source.is_empty() {
            return Err(fault("every line names its source".to_owned()));
        }
        check_settings(&line.id, &own, &self.sources)?;
        let settings = match family.and_then(|f| self.families.get(&f)) {
            Some(defaults) => defaults.overlaid(&own),
            None => own.clone(),
        };
        for p in &line.profiles {
            if !PROFILES.contains(&p.as_str()) {
                return Err(fault(format!(
                    "{p:?} is not a cross-Region profile prefix ({})",
                    PROFILES.join(", ")
                )));
            }
        }
        if let Some(r) = line.regions.iter().flatten().find(|r| !is_region(r)) {
            return Err(fault(format!("{r:?} is not a Region (us-east-1)")));
        }
        let sources = settings
            .source
            .iter()
            .map(|s| self.sources[s].clone())
            .collect();
        let golden = line
            .golden
            .or_else(|| family.map(|f| f.name().to_owned()))
            .unwrap_or_default();
        Ok(ModelEntry {
            id: line.id,
            name: line.name,
            family,
            native,
            why_not,
            regions: line.regions,
            profiles: line.profiles,
            settings,
            own,
            sources,
            unverified: line.unverified,
            golden,
        })
    }

    /// Every line, in the table's order (the file's lines after the built-in ones they did not
    /// replace).
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The line for `model_id` (a model or inference-profile id, or an ARN): the longest `id`
    /// that begins its bare id.
    pub fn entry(&self, model_id: &str) -> Option<&ModelEntry> {
        let id = bare_model_id(model_id);
        self.entries
            .iter()
            .filter(|e| id.starts_with(e.id.as_str()))
            .max_by_key(|e| e.id.len())
    }

    /// A family's documented settings.
    pub fn family_settings(&self, family: Family) -> &Settings {
        &self.families[&family]
    }

    /// The family whose body `model_id`'s records take, and its line.
    pub fn resolve(&self, model_id: &str) -> Result<Resolved<'_>, UnknownModel> {
        check_model_id(model_id)?;
        let not = |reason: String| UnknownModel {
            model: model_id.to_owned(),
            reason,
        };
        let Some(entry) = self.entry(model_id) else {
            let mut reason = "not a model the model table knows".to_owned();
            let close = self.close_matches(model_id);
            if !close.is_empty() {
                reason += &format!("; close matches: {}", close.join(", "));
            }
            if model_id.contains("application-inference-profile/") {
                reason += "; an application inference profile's id does not say its model: give --family NAME";
            } else {
                reason += "; a model it lacks is one line in a --models FILE, or run it in a Converse job (--invocation-type converse)";
            }
            return Err(not(reason));
        };
        match (entry.family, &entry.why_not) {
            (Some(family), _) => Ok(Resolved { family, entry }),
            (None, why) => Err(not(format!(
                "{} cannot run in a batch job: {}",
                entry.name,
                why.as_deref().unwrap_or("not batch-capable")
            ))),
        }
    }

    /// Refuses a model id the table says Bedrock cannot batch, whatever family or job type is
    /// asked for (a `--family` or a Converse job does not make it batch-capable).
    pub fn check_batchable(&self, model_id: &str) -> Result<(), UnknownModel> {
        match self.entry(model_id) {
            Some(e) if e.family.is_none() => Err(UnknownModel {
                model: model_id.to_owned(),
                reason: format!(
                    "{} cannot run in a batch job: {}",
                    e.name,
                    e.why_not.as_deref().unwrap_or("not batch-capable")
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The documented limits a request to `model_id` is held to when `family` writes it: the
    /// family's, with the model's own where its line states them (when `family` is the model's
    /// family or its `native` one). A Converse job is bounded by the model's output limit too,
    /// where the table knows the model.
    pub fn limits(&self, family: Family, model_id: &str) -> Limits {
        let defaults = self.family_settings(family);
        let settings = match self.entry(model_id) {
            Some(e) if e.family == Some(family) || e.native == Some(family) => {
                defaults.overlaid(&e.own)
            }
            Some(e) if family == Family::Converse && e.family.is_some() => Settings {
                max_tokens: e.settings.max_tokens,
                ..defaults.clone()
            },
            _ => defaults.clone(),
        };
        Limits::from_settings(&settings)
    }

    /// Checks that `model_id` batches in `region` per the table: a bare id that batches only
    /// through a cross-Region profile there is refused with the profile to use. Nothing is
    /// refused where the table does not know.
    pub fn check_region(&self, model_id: &str, region: Option<&str>) -> Result<(), UnknownModel> {
        if let Some(r) = region.filter(|r| !is_region(r)) {
            return Err(UnknownModel {
                model: model_id.to_owned(),
                reason: format!("{r:?} is not a Region name (us-east-1)"),
            });
        }
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        if model_id.starts_with("arn:") || profile_prefix(id).is_some() {
            return Ok(());
        }
        let Some(entry) = self.entry(model_id) else {
            return Ok(());
        };
        let Some(regions) = &entry.regions else {
            return Ok(());
        };
        let batches_here = match region {
            Some(r) => regions.iter().any(|x| x == r),
            None => !regions.is_empty(),
        };
        if batches_here {
            return Ok(());
        }
        let profiles: Vec<String> = profiles_for(region, &entry.profiles)
            .into_iter()
            .map(|p| format!("{p}.{id}"))
            .collect();
        let place = match region {
            Some(r) => format!("in {r}"),
            None => "in any Region".to_owned(),
        };
        let mut reason = format!(
            "{} does not batch {place} under its bare model id",
            entry.name
        );
        if profiles.is_empty() {
            if !regions.is_empty() {
                reason += &format!(" (it does in {})", regions.join(", "));
            }
        } else {
            reason += &format!(
                "; use the cross-Region inference profile {}",
                profiles.join(" or ")
            );
        }
        reason += &format!(" (per {})", entry.sources.join("; "));
        Err(UnknownModel {
            model: model_id.to_owned(),
            reason,
        })
    }

    /// Up to three batch-capable ids like `model_id`: the same vendor's, or a few edits away.
    fn close_matches(&self, model_id: &str) -> Vec<String> {
        let lower = model_id.to_ascii_lowercase();
        let mut id = bare_model_id(&lower);
        while let Some(p) = profile_prefix(id) {
            id = &id[p.len() + 1..];
        }
        let vendor = id.split('.').next().unwrap_or(id);
        let mut scored: Vec<(usize, &str)> = self
            .entries
            .iter()
            .filter(|e| e.family.is_some())
            .filter_map(|e| {
                let head: String = id.chars().take(e.id.chars().count()).collect();
                let d = edits(&head, &e.id);
                let same_vendor = e.id.split('.').next() == Some(vendor);
                (same_vendor || d <= 2.max(e.id.len() / 5)).then_some((d, e.id.as_str()))
            })
            .collect();
        // Fewest edits first; of equals, the most specific line.
        scored.sort_by_key(|(d, id)| (*d, std::cmp::Reverse(id.len()), *id));
        scored.dedup_by_key(|(_, id)| *id);
        scored
            .into_iter()
            .take(3)
            .map(|(_, id)| format!("{id}…"))
            .collect()
    }

    /// The table as Markdown, one row per line: for the README and `models --list`.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| id | model | family | batch | Regions (bare id) | profiles | unverified |\n|---|---|---|---|---|---|---|\n");
        let mut entries: Vec<&ModelEntry> = self.entries.iter().collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        for e in entries {
            let family = e.family.map_or("—".to_owned(), |f| f.to_string());
            let batch = e
                .why_not
                .as_deref()
                .map_or("yes".to_owned(), |w| format!("no: {w}"));
            let regions = match &e.regions {
                None => "not read".to_owned(),
                Some(r) if r.is_empty() => "profile only".to_owned(),
                Some(r) => r.join(" "),
            };
            let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
            out += &format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                e.id,
                cell(&e.name),
                family,
                cell(&batch),
                regions,
                e.profiles.join(" "),
                cell(e.unverified.as_deref().unwrap_or(""))
            );
        }
        out
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invocation::InvokeModel => "InvokeModel",
            Invocation::Converse => "Converse",
        })
    }
}

/// The profile prefixes, of those that batch the model, for a Region: its geography's first,
/// then `global`; every one when the Region is not known.
fn profiles_for<'p>(region: Option<&str>, profiles: &'p [String]) -> Vec<&'p str> {
    let Some(region) = region else {
        return profiles.iter().map(String::as_str).collect();
    };
    let geo: &[&str] = match region {
        r if r.starts_with("us-gov-") => &["us-gov"],
        r if r.starts_with("us-") => &["us"],
        r if r.starts_with("eu-") => &["eu"],
        "ap-northeast-1" | "ap-northeast-3" => &["jp", "apac"],
        "ap-southeast-2" | "ap-southeast-4" => &["au", "apac"],
        r if r.starts_with("ap-") => &["apac"],
        r if r.starts_with("ca-") => &["ca", "us"],
        _ => &[],
    };
    // Global profiles route to commercial Regions only.
    let global: &[&str] = if region.starts_with("us-gov-") || region.starts_with("cn-") {
        &[]
    } else {
        &["global"]
    };
    geo.iter()
        .chain(global)
        .filter_map(|g| profiles.iter().find(|p| p == g).map(String::as_str))
        .collect()
}

/// A `[lo, hi]` of exactly two numbers.
fn range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<[f64; 2]>, D::Error> {
    let v: Vec<f64> = Deserialize::deserialize(d)?;
    match v.as_slice() {
        [lo, hi] => Ok(Some([*lo, *hi])),
        _ => Err(serde::de::Error::custom(format!(
            "a range is two numbers [lo, hi], not {} of them",
            v.len()
        ))),
    }
}

/// The cross-Region profile prefixes the table may name.
const PROFILES: &[&str] = &["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"];

/// Whether `r` is spelled as an AWS Region (`us-east-1`, `us-gov-west-1`).
pub(crate) fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// Checks a model id's spelling as Bedrock's `ModelId` pattern has it: an ARN, or an id of
/// lowercase letters, digits and `.-:_` (no spaces, no path).
pub fn check_model_id(model_id: &str) -> Result<(), UnknownModel> {
    let bad = |why: &str| UnknownModel {
        model: model_id.to_owned(),
        reason: why.to_owned(),
    };
    if model_id.is_empty() || model_id.len() > 2048 {
        return Err(bad("a model id is 1 to 2048 characters"));
    }
    if model_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("a model id has no spaces or control characters"));
    }
    if model_id.starts_with("arn:") {
        return Ok(());
    }
    if model_id.contains('/') {
        return Err(bad("a model id with a / is an ARN (arn:aws:bedrock:…)"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-:_".contains(&b);
    if !model_id.bytes().all(allowed) {
        return Err(bad("a model id is letters, digits and . - : _"));
    }
    if model_id.contains('.') && model_id.bytes().any(|b| b.is_ascii_uppercase()) {
        let lower = model_id.to_ascii_lowercase();
        return Err(bad(&format!(
            "Bedrock's model ids are lowercase ({lower}?)"
        )));
    }
    Ok(())
}

/// Checks one set of settings: its sources named, its figures figures.
fn check_settings(
    id: &str,
    s: &Settings,
    sources: &BTreeMap<String, String>,
) -> Result<(), TableError> {
    let fault = |fault: String| TableError::Line {
        id: id.to_owned(),
        fault,
    };
    for name in &s.source {
        if !sources.contains_key(name) {
            return Err(fault(format!("source {name:?} is not in [sources]")));
        }
    }
    if let Some([lo, hi]) = s.temperature {
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return Err(fault(format!("temperature [{lo}, {hi}] is not a range")));
        }
    }
    if s.max_tokens == Some(0) || s.top_k == Some(0) || s.stop == Some(0) {
        return Err(fault(
            "max_tokens, top_k and stop are at least 1".to_owned(),
        ));
    }
    if s.dimensions
        .as_ref()
        .is_some_and(|d| d.is_empty() || d.contains(&0))
    {
        return Err(fault("dimensions are positive sizes".to_owned()));
    }
    Ok(())
}

fn family_names() -> String {
    Family::ALL
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The edit distance between two short strings.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_is_valid_and_every_line_says_where_it_comes_from() {
        let t = ModelTable::builtin();
        assert!(t.entries().len() > 40);
        for e in t.entries() {
            assert!(!e.sources.is_empty(), "{}", e.id);
            assert!(
                e.sources.iter().all(|s| s.starts_with("https://")),
                "{}: {:?}",
                e.id,
                e.sources
            );
            assert_eq!(e.family.is_some(), e.why_not.is_none(), "{}", e.id);
            if e.family == Some(Family::Converse) {
                assert!(e.unverified.is_some(), "{}: why a Converse job", e.id);
            }
        }
        for &f in Family::ALL {
            assert!(!t.family_settings(f).source.is_empty(), "{f}");
        }
    }

    #[test]
    fn the_longest_id_that_begins_the_model_id_wins() {
        let t = ModelTable::builtin();
        let id = |m| t.entry(m).map(|e| e.id.as_str());
        assert_eq!(
            id("anthropic.claude-opus-4-5-20251101-v1:0"),
            Some("anthropic.claude-opus-4-5")
        );
        assert_eq!(
            id("anthropic.claude-opus-4-1-20250805-v1:0"),
            Some("anthropic.claude-opus-4")
        );
        assert_eq!(
            id("global.amazon.nova-2-lite-v1:0"),
            Some("amazon.nova-2-lite")
        );
        assert_eq!(id("qwen.qwen3-vl-235b-a22b"), Some("qwen.qwen3-vl"));
        assert_eq!(id("qwen.qwen3-32b-v1:0"), Some("qwen."));
        assert_eq!(id("writer.palmyra-x5-v1:0"), None);
    }

    #[test]
    fn a_file_adds_and_replaces_lines_and_a_bad_line_is_named() {
        let t = ModelTable::with_file(
            r#"
models = [
  { id = "acme.chat", name = "Acme Chat", family = "openai-chat", max_tokens = 100, source = ["acme"] },
  { id = "qwen.", name = "Qwen", family = "openai-chat", source = ["acme"] },
]
[sources]
acme = "https://example.com/acme"
"#,
        )
        .unwrap();
        let r = t.resolve("acme.chat-v1").unwrap();
        assert_eq!(r.family, Family::OpenAiChat);
        assert_eq!(
            t.limits(Family::OpenAiChat, "acme.chat-v1").max_tokens,
            Some(100)
        );
        assert_eq!(
            t.limits(Family::OpenAiChat, "acme.chat-v1").temperature,
            (0.0, 2.0)
        );
        assert_eq!(
            t.resolve("qwen.qwen3-32b-v1:0").unwrap().family,
            Family::OpenAiChat
        );
        assert!(t
            .resolve("acme.chat-v1")
            .unwrap()
            .notice("acme.chat-v1")
            .is_none());
        assert_eq!(t.entries().len(), ModelTable::builtin().entries().len() + 1);

        for (line, says) in [
            (
                r#"{ id = "x.y", name = "X", family = "nope", source = ["llama"] }"#,
                "no family is called \"nope\"",
            ),
            (
                r#"{ id = "x.y", name = "X", family = "llama" }"#,
                "names its source",
            ),
            (
                r#"{ id = "x.y", name = "X", family = "llama", source = ["nowhere"] }"#,
                "\"nowhere\" is not in [sources]",
            ),
            (
                r#"{ id = "x.y", name = "X", batch = false, source = ["llama"] }"#,
                "needs `why`",
            ),
            (
                r#"{ id = "us.x.y", name = "X", family = "llama", source = ["llama"] }"#,
                "bare model id",
            ),
            (
                r#"{ id = "x.y", name = "X", family = "llama", temperature = [1.0, 0.5], source = ["llama"] }"#,
                "not a range",
            ),
            (
                r#"{ id = "x.y", name = "X", family = "llama", profiles = ["mars"], source = ["llama"] }"#,
                "\"mars\"",
            ),
            (
                r#"{ id = "x.y", name = "X", family = "llama", colour = "red", source = ["llama"] }"#,
                "colour",
            ),
        ] {
            let e = ModelTable::with_file(&format!("models = [\n{line},\n]\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{line}: {e}");
            if !says.contains("colour") && !says.contains("two numbers") {
                assert!(e.contains("\"x.y\"") || e.contains("\"us.x.y\""), "{e}");
            }
        }
        let twice = r#"models = [
{ id = "x.y", name = "X", family = "llama", source = ["llama"] },
{ id = "x.y", name = "X", family = "llama", source = ["llama"] },
]"#;
        assert!(ModelTable::with_file(twice)
            .unwrap_err()
            .to_string()
            .contains("second line"));
    }

    #[test]
    fn a_bare_id_that_batches_only_through_a_profile_is_refused_with_the_profile() {
        let t = ModelTable::builtin();
        let refusal = |m, r| t.check_region(m, r).unwrap_err().to_string();
        let e = refusal("amazon.nova-premier-v1:0", None);
        assert!(
            e.contains("use the cross-Region inference profile us.amazon.nova-premier-v1:0"),
            "{e}"
        );
        let e = refusal("amazon.nova-2-lite-v1:0", Some("eu-west-1"));
        assert!(e.contains("global.amazon.nova-2-lite-v1:0"), "{e}");
        assert!(!e.contains("us.amazon"), "{e}");
        let e = refusal("amazon.nova-lite-v1:0", Some("us-west-2"));
        assert!(e.contains("in us-west-2"), "{e}");
        assert!(e.contains("us.amazon.nova-lite-v1:0"), "{e}");
        let e = refusal("amazon.nova-pro-v1:0", Some("ap-northeast-1"));
        assert!(e.contains("apac.amazon.nova-pro-v1:0"), "{e}");
        let e = refusal("amazon.titan-embed-image-v1", Some("ap-northeast-1"));
        assert!(e.contains("it does in us-east-1"), "{e}");
        assert!(!e.contains("profile"), "{e}");
        for (m, r) in [
            ("amazon.nova-lite-v1:0", Some("us-east-1")),
            ("amazon.nova-lite-v1:0", None),
            ("us.amazon.nova-lite-v1:0", Some("us-west-2")),
            ("global.amazon.nova-2-lite-v1:0", None),
            (
                "arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-premier-v1:0",
                None,
            ),
            ("amazon.titan-embed-image-v1", Some("eu-west-1")),
            ("anthropic.claude-3-haiku-20240307-v1:0", Some("us-west-2")),
            ("acme.unknown", Some("us-west-2")),
        ] {
            assert!(t.check_region(m, r).is_ok(), "{m} in {r:?}");
        }
    }

    #[test]
    fn ids_and_regions_are_spelled_as_aws_spells_them() {
        for bad in [
            "amazon.nova-lite-v1:0 ",
            "amazon.nova-lite-v1:0\nX",
            "foo/amazon.nova-lite-v1:0",
            "AMAZON.NOVA-LITE-V1:0",
            "",
        ] {
            assert!(check_model_id(bad).is_err(), "{bad:?}");
            assert!(ModelTable::builtin().resolve(bad).is_err(), "{bad:?}");
        }
        let e = check_model_id("AMAZON.NOVA-LITE-V1:0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("amazon.nova-lite-v1:0?"), "{e}");
        for good in [
            "amazon.nova-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1B2c3",
            "us.anthropic.claude-3-haiku-20240307-v1:0",
        ] {
            assert!(check_model_id(good).is_ok(), "{good}");
        }
        let t = ModelTable::builtin();
        for r in ["", "US-EAST-1", " us-east-1", "east"] {
            assert!(
                t.check_region("amazon.nova-lite-v1:0", Some(r)).is_err(),
                "{r:?}"
            );
        }
        // Global profiles do not reach GovCloud.
        let e = t
            .check_region("amazon.nova-2-lite-v1:0", Some("us-gov-west-1"))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("global."), "{e}");
    }

    #[test]
    fn a_model_that_cannot_batch_is_refused_whatever_is_asked() {
        let t = ModelTable::builtin();
        for m in [
            "cohere.command-r-v1:0",
            "google.gemma-4-31b",
            "amazon.nova-canvas-v1:0",
        ] {
            let e = t.check_batchable(m).unwrap_err().to_string();
            assert!(e.contains("cannot run in a batch job"), "{m}: {e}");
        }
        assert!(t.check_batchable("qwen.qwen3-32b-v1:0").is_ok());
        assert!(t.check_batchable("acme.unknown").is_ok());
    }

    #[test]
    fn a_converse_job_chosen_for_the_user_says_why() {
        let t = ModelTable::builtin();
        let r = t.resolve("qwen.qwen3-32b-v1:0").unwrap();
        assert_eq!(r.family, Family::Converse);
        let n = r.notice("qwen.qwen3-32b-v1:0").unwrap();
        assert!(
            n.contains("Converse job") && n.contains("--family openai-chat"),
            "{n}"
        );
        assert!(t
            .resolve("anthropic.claude-3-haiku-20240307-v1:0")
            .unwrap()
            .notice("x")
            .is_none());
    }

    #[test]
    fn a_converse_job_is_bounded_by_the_models_own_output_limit() {
        let t = ModelTable::builtin();
        let l = t.limits(Family::Converse, "anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(l.max_tokens, Some(4096));
        assert_eq!(l.stop, Some(2500));
        assert_eq!(
            t.limits(Family::Converse, "us.deepseek.r1-v1:0").max_tokens,
            Some(32768)
        );
        assert_eq!(
            t.limits(Family::Converse, "us.deepseek.r1-v1:0").stop,
            Some(10)
        );
        assert!(
            t.limits(Family::Nova, "global.amazon.nova-2-lite-v1:0")
                .reasoning
        );
        assert!(!t.limits(Family::Nova, "amazon.nova-lite-v1:0").reasoning);
        // A model's own figures follow it to the family chosen with --family.
        let vl = t.limits(Family::OpenAiChat, "qwen.qwen3-vl-235b-a22b");
        assert!(vl.media.contains(&Media::Image));
        assert_eq!(vl.temperature, (0.0, 2.0));
        assert!(t
            .limits(Family::OpenAiChat, "qwen.qwen3-32b-v1:0")
            .media
            .is_empty());
    }

    #[test]
    fn the_markdown_has_a_row_per_line() {
        let t = ModelTable::builtin();
        let md = t.markdown();
        assert_eq!(md.lines().count(), t.entries().len() + 2);
        assert!(md
            .contains("| `amazon.nova-premier` | Nova Premier | nova | yes | profile only | us |"));
    }

    #[test]
    fn edits_count_insertions_deletions_and_changes() {
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("", "abc"), 3);
        assert_eq!(edits("same", "same"), 0);
    }
}
