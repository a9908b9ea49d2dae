//! `bedrock-batch models`: the model table, or what it says about one model id.

use std::path::PathBuf;

use super::{Context, EXIT_OK};
use bedrock_batch::record::Limits;

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
        print!("{}", table.markdown());
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
    println!(
        "  max tokens {}, temperature {}–{}, top_k {}, stop sequences {}",
        limits.max_tokens.map_or_else(unstated, |n| n.to_string()),
        limits.temperature.0,
        limits.temperature.1,
        limits.top_k.map_or_else(unstated, |n| n.to_string()),
        limits.stop.map_or_else(unstated, |n| n.to_string()),
    );
    if !limits.dimensions.is_empty() {
        println!("  dimensions {:?}", limits.dimensions);
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
