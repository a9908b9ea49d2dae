//! `bedrock-batch models`: the model table, or what it says about one model id.

use std::path::PathBuf;

use super::{Context, EXIT_OK};
use bedrock_batch::record::model_table::ModelEntry;
use bedrock_batch::record::{Endpoint, Limits};

/// Show the model table (every model this version knows, whether and where Bedrock batches it,
/// with sources), or what it says about one model id: its family, job type, limits, and —
/// in a Region — whether its bare id batches there or which profile to use.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  bedrock-batch models
  bedrock-batch models amazon.nova-lite-v1:0 --region eu-west-3
  bedrock-batch models acme.chat-v1 --models my-models.toml")]
pub struct Args {
    /// A model id, inference profile id or ARN to look up (default: list the table).
    model: Option<String>,

    /// A model table whose lines take precedence over the built-in ones.
    #[arg(long, value_name = "FILE")]
    models: Option<PathBuf>,
}

pub async fn run(args: Args, cx: &Context) -> anyhow::Result<u8> {
    let table = super::to_bedrock::read_model_table(args.models.as_deref())?;
    let Some(model) = args.model else {
        if cx.json {
            let lines: Vec<serde_json::Value> = table.entries().iter().map(line_json).collect();
            println!("{}", serde_json::to_string_pretty(&lines)?);
        } else {
            print!("{}", table.markdown());
        }
        return Ok(EXIT_OK);
    };
    let resolved = table.resolve(&model)?;
    let e = resolved.entry;
    let limits: Limits = table.limits(resolved.family, &model);
    let region = cx.storage.region();
    let region_check = table.check_region(&model, region).err();
    if cx.json {
        let v = serde_json::json!({
            "model": model,
            "name": e.name,
            "table_id": e.id,
            "family": resolved.family.name(),
            "invocation_type": resolved.family.invocation_type(),
            "native": e.native.map(|f| f.name()),
            "max_tokens": limits.max_tokens,
            "temperature": [limits.temperature.0, limits.temperature.1],
            "top_k": limits.top_k,
            "stop": limits.stop,
            "dimensions": limits.dimensions,
            "reasoning": limits.reasoning,
            "regions": e.regions,
            "profiles": e.profiles,
            "region": region,
            "refused_here": region_check.as_ref().map(|r| r.reason.clone()),
            "sources": e.sources,
            "unverified": e.unverified,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(EXIT_OK);
    }
    println!("{model}: {} (table line {:?})", e.name, e.id);
    println!(
        "  family {} ({} job)",
        resolved.family,
        resolved.family.invocation_type()
    );
    if let Some(notice) = resolved.notice(&model) {
        println!("  note: {notice}");
    }
    let unstated = || "not stated".to_owned();
    if resolved.family.serves(Endpoint::Embeddings) {
        println!("  dimensions {:?}", limits.dimensions);
    } else {
        println!(
            "  max tokens {}, temperature {}–{}, top_k {}, stop sequences {}",
            limits.max_tokens.map_or_else(unstated, |n| n.to_string()),
            limits.temperature.0,
            limits.temperature.1,
            limits.top_k.map_or_else(unstated, |n| n.to_string()),
            limits.stop.map_or_else(unstated, |n| n.to_string()),
        );
    }
    if limits.reasoning {
        println!("  takes a reasoning effort");
    }
    match &e.regions {
        Some(r) if r.is_empty() => println!("  bare id: batches only through a profile"),
        Some(r) => println!("  bare id batches in: {}", r.join(" ")),
        None => println!("  bare id: Regions not known"),
    }
    if !e.profiles.is_empty() {
        println!("  cross-Region profiles: {}", e.profiles.join(" "));
    }
    if let Some(refusal) = &region_check {
        println!("  refused here: {}", refusal.reason);
    }
    for s in &e.sources {
        println!("  source: {s}");
    }
    if let Some(u) = &e.unverified {
        println!("  unverified: {u}");
    }
    Ok(EXIT_OK)
}

/// One table line as JSON, for `models --json`.
fn line_json(e: &ModelEntry) -> serde_json::Value {
    let s = &e.settings;
    serde_json::json!({
        "id": e.id,
        "name": e.name,
        "family": e.family.map(|f| f.name()),
        "native": e.native.map(|f| f.name()),
        "batch": e.why_not.is_none(),
        "why_not": e.why_not,
        "regions": e.regions,
        "profiles": e.profiles,
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "top_k": s.top_k,
        "stop": s.stop,
        "dimensions": s.dimensions,
        "reasoning": s.reasoning.unwrap_or(false),
        "invocation": e.invocations().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "sources": e.sources,
        "unverified": e.unverified,
    })
}
