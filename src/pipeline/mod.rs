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
    collect_folder, compare_with_manifest, convert_from_bedrock, prepare_from_bedrock, BadLine,
    Collected, FolderResults, FromBedrockOptions, FromBedrockReport, ManifestTotals, MissingReason,
    OutputFile,
};
pub use to_bedrock::{
    convert_to_bedrock, prepare_to_bedrock, BedrockOutput, ConvertError, PreparedConversion,
    Report, ToBedrockOptions, MIN_RECORDS_PER_JOB,
};
