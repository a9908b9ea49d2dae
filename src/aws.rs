//! The AWS configuration both clients (S3, Bedrock) start from: AWS conventions plus our flags.

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Where and as whom to reach an AWS service.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigSource<'a> {
    pub profile: Option<&'a str>,
    pub region: Option<&'a str>,
    /// A custom endpoint for this client only (the `AWS_ENDPOINT_URL*` variables still apply).
    pub endpoint_url: Option<&'a str>,
    pub max_attempts: u32,
}

/// Loads the shared configuration: the default credential chain, the profile, the region (falling
/// back to `us-east-1`), standard retries with `max_attempts`, and the endpoint.
pub(crate) async fn load(source: ConfigSource<'_>) -> SdkConfig {
    let region = RegionProviderChain::first_try(source.region.map(|r| Region::new(r.to_owned())))
        .or_default_provider()
        .or_else(Region::new("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .retry_config(RetryConfig::standard().with_max_attempts(source.max_attempts.max(1)));
    if let Some(profile) = source.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = source.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// `YYYYMMDDTHHMMSSZ` for Unix seconds `secs` (UTC).
pub(crate) fn utc_stamp(secs: u64) -> String {
    aws_sdk_s3::primitives::DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
        .replace(['-', ':'], "")
}
