//! Run OpenAI-format batch files on Amazon Bedrock batch inference.
//!
//! - [`record`]: the pure per-line transforms, both ways (OpenAI batch line → Bedrock record;
//!   Bedrock output line → OpenAI output or error line), per model family.
//! - [`pipeline`]: the streaming, parallel, ordered conversion of whole inputs
//!   ([`pipeline::convert_to_bedrock`], [`pipeline::convert_from_bedrock`]) and their accounting.
//! - [`io`]: sources and sinks: local files, stdin/stdout, memory, S3.
//! - [`driver`]: Bedrock batch jobs: submit, track, stop, wait and collect a batch folder's
//!   jobs, shown as OpenAI Batch objects.
//! - [`batch_folder`]: the layout and `batch.json` of a batch folder.
//! - [`server`]: `serve`, the OpenAI Files and Batches API over Bedrock batch inference.
//! - [`sample`]: realistic synthetic inputs for benchmarks.

#![warn(missing_docs)]

mod aws;
pub mod batch_folder;
pub mod driver;
pub mod io;
pub mod pipeline;
pub mod pricing;
pub mod record;
pub mod sample;
pub mod server;
