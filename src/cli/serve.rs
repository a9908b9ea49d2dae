//! `bedrock-batch serve`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use super::{Context, EXIT_OK};
use bedrock_batch::server::{Server, ServerConfig};

/// Serve the OpenAI Files and Batches API, running batches on Bedrock.
///
/// The official OpenAI SDK works unchanged with base_url pointing here: client.files.create(…,
/// purpose="batch") streams the file through the converter into a batch folder under the
/// staging prefix; client.batches.create(…) submits its Bedrock jobs; client.batches.retrieve(…)
/// shows them as an OpenAI Batch; client.files.content(output_file_id) streams the results. All
/// state lives in the staging prefix: a restarted server carries on.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example configuration (serve.toml):
  listen = \"127.0.0.1:8080\"
  staging = \"s3://my-bucket/bedrock-batch/\"
  role_arn = \"arn:aws:iam::123456789012:role/BedrockBatch\"

  [models.gpt-4o-mini]
  model_id = \"us.anthropic.claude-3-5-haiku-20241022-v1:0\"

  [[keys]]
  name = \"team-a\"
  sha256 = \"<printf %s \\\"$KEY\\\" | sha256sum>\"
  models = [\"gpt-4o-mini\"]")]
pub struct Args {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// Address to listen on (overrides the file's `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// The staging prefix (overrides the file's `staging`).
    #[arg(long, value_name = "S3_PREFIX")]
    staging: Option<String>,

    /// The service role (overrides the file's `role_arn`).
    #[arg(long, value_name = "ARN")]
    role_arn: Option<String>,
}

pub async fn run(args: Args, cx: &Context) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut config = ServerConfig::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(staging) = args.staging {
        config.staging = staging;
    }
    if let Some(role) = args.role_arn {
        config.role_arn = role;
    }
    if config.kms_key_id.is_none() {
        config.kms_key_id = cx.kms_key_id.clone();
    }
    for (name, alias) in &config.models {
        config
            .model_table()
            .check_region(&alias.model_id, cx.storage.region())
            .with_context(|| format!("{}: models.{name}", args.config.display()))?;
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let storage = Arc::new(bedrock_batch::io::Storage::new(cx.storage_options.clone()));
    let server = Server::new(config, storage, cx.driver().await).await?;
    // The address on stdout (a port of 0 picks a free one), for whoever started the server.
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let shutdown = cx.shutdown.clone();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            tracing::info!("shutting down");
        }
    });
    server.serve(listener, shutdown).await?;
    Ok(EXIT_OK)
}
