//! The streaming engine: framing into line-aligned blocks, the parallel ordered map, sharding by
//! quota, and the accounting that makes every input line end up in exactly one place.

mod framer;
mod from_bedrock;
mod lines;
mod ordered;
mod shared;
mod to_bedrock;

pub use framer::{Block, Frame, Framer};
pub use from_bedrock::{
    compare_with_manifest, convert_from_bedrock, read_batch_folder, read_job_records, BadLine,
    FolderError, FolderInputs, FromBedrockOptions, FromBedrockReport, ManifestTotals,
    MissingReason, OutputFile, RecordLedger,
};
pub use to_bedrock::{
    convert_to_bedrock, BedrockOutput, ConvertError, Report, ToBedrockOptions, MIN_RECORDS_PER_JOB,
};
