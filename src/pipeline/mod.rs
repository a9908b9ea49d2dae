//! The streaming engine and its two plug-ins.
//!
//! The engine is direction-neutral: [`framer`] cuts the input into line-aligned blocks, the
//! [`Newlines`] of each found in one pass, `ordered` converts blocks in parallel and hands them
//! on in input order, `lines` is the one per-line loop (line endings, BOM, blank and over-long
//! lines), and [`Error`] is why a run stops. Each direction supplies only what differs — the per-line transform, the ordered
//! checks and its report:
//!
//! - [`to_bedrock`](convert_to_bedrock): OpenAI batch lines → Bedrock records, into a stream or
//!   a batch folder generation (sharding and all folder writing are the
//!   [`batch_folder`](crate::batch_folder) writer's);
//! - [`from_bedrock`](convert_from_bedrock): Bedrock's output → OpenAI output and error files,
//!   every custom_id accounted for.
//!
//! This layer reads and writes through [`crate::io`] and maps lines with [`crate::record`]; it
//! must not build batch-folder paths (it hands records to the folder's writer) and knows nothing
//! of jobs, servers or command lines.

mod cr_records;
mod error;
mod framer;
mod from_bedrock;
mod keys;
mod lines;
mod newlines;
mod ordered;
mod to_bedrock;

pub use error::Error;
pub use framer::{Block, Frame, Framer};
pub use from_bedrock::{
    collect_folder, compare_with_manifest, convert_from_bedrock, prepare_from_bedrock, BadLine,
    Collected, FolderResults, FromBedrockOptions, FromBedrockReport, ManifestTotals, MissingReason,
    OutputFile,
};
pub use newlines::{Newlines, Positions};
pub use to_bedrock::{
    convert_to_bedrock, prepare_to_bedrock, prepare_to_bedrock_inputs, BedrockOutput,
    PreparedConversion, Report, ToBedrockOptions, MIN_RECORDS_PER_JOB,
};
