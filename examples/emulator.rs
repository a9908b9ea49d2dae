//! The test servers as a program, to try the whole trip without AWS: an S3 server (s3s-fs on a
//! temporary directory) and the Bedrock batch emulator, on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example emulator            # prints the flags to use, runs until Ctrl-C
//! bedrock-batch --endpoint-url http://127.0.0.1:PORT --bedrock-endpoint-url http://127.0.0.1:PORT2 \
//!     run requests.jsonl --model anthropic.claude-3-haiku-20240307-v1:0 \
//!     --role-arn arn:aws:iam::123456789012:role/BedrockBatch --staging s3://demo/run1/
//! ```
//!
//! Credentials: `AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=testsecret`.
//!
//! The emulator's behaviour can be set from the environment: `EMULATOR_RECORDS_PER_TICK`,
//! `EMULATOR_TICK_MS` (slow progress), `EMULATOR_ERROR_EVERY` (every n-th record fails).

#[path = "../tests/bedrock_emulator/mod.rs"]
mod bedrock_emulator;
#[path = "../tests/s3_server/mod.rs"]
mod s3_server;

fn main() {
    let s3 = s3_server::in_process();
    let emu = bedrock_emulator::start(&s3);
    for (var, knob) in [
        ("EMULATOR_RECORDS_PER_TICK", &emu.knobs.records_per_tick),
        ("EMULATOR_TICK_MS", &emu.knobs.tick_ms),
        ("EMULATOR_ERROR_EVERY", &emu.knobs.error_every),
    ] {
        if let Some(n) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
            knob.store(n, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        s3.client()
            .await
            .create_bucket()
            .bucket("demo")
            .send()
            .await
            .expect("the demo bucket");
    });
    println!("S3 (bucket s3://demo/): {}", s3.endpoint);
    println!("Bedrock:                {}", emu.endpoint);
    println!();
    println!("export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=testsecret AWS_REGION=us-east-1");
    println!(
        "bedrock-batch --endpoint-url {} --bedrock-endpoint-url {} run requests.jsonl \\",
        s3.endpoint, emu.endpoint
    );
    println!("    --model anthropic.claude-3-haiku-20240307-v1:0 \\");
    println!(
        "    --role-arn arn:aws:iam::123456789012:role/BedrockBatch --staging s3://demo/run1/"
    );
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}
