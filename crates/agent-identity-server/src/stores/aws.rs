//! `type = "aws"`: AWS Secrets Manager, behind a read cache.

use std::time::Duration;

use agent_identity::ConfigError;
use serde::Deserialize;

use agent_identity::identity_cache::CachedStore;

use super::vault::{default_vault_cache_capacity, default_vault_cache_ttl};
use super::{located_store_error, read_cache};

/// A `[stores.<name>]` of `type = "aws"`: credentials in AWS Secrets Manager. AWS credentials
/// come from the SDK's default chain (environment, profile, web identity, instance role).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsSection {
    /// The region; without it, the SDK's region chain (`AWS_REGION`, profile, ...).
    pub(crate) region: Option<String>,
    /// Another endpoint than AWS's (a VPC endpoint, an emulator).
    pub(crate) endpoint: Option<String>,
    #[serde(default = "default_aws_prefix")]
    pub(crate) prefix: String,
    #[serde(default = "default_aws_timeout")]
    pub(crate) timeout_ms: u64,
    #[serde(default = "default_aws_attempts")]
    pub(crate) attempts: u32,
    #[serde(default = "default_vault_cache_ttl")]
    pub(crate) cache_ttl_secs: u64,
    #[serde(default = "default_vault_cache_capacity")]
    pub(crate) cache_capacity: u64,
    #[serde(default = "default_aws_recovery_window")]
    pub(crate) recovery_window_days: i64,
}

fn default_aws_prefix() -> String {
    agent_identity::identity_aws::DEFAULT_PREFIX.into()
}

fn default_aws_timeout() -> u64 {
    5_000
}

fn default_aws_attempts() -> u32 {
    3
}

fn default_aws_recovery_window() -> i64 {
    30
}

pub(crate) fn aws_store(
    section: AwsSection,
    location: &str,
) -> Result<CachedStore<agent_identity::identity_aws::AwsSecretsManagerStore>, ConfigError> {
    let cache = read_cache(section.cache_ttl_secs, section.cache_capacity);
    let mut builder = agent_identity::identity_aws::AwsSecretsManagerStore::builder()
        .prefix(section.prefix)
        .timeout(Duration::from_millis(section.timeout_ms))
        .attempts(section.attempts)
        .recovery_window_days(Some(section.recovery_window_days));
    if let Some(region) = section.region {
        builder = builder.region(region);
    }
    if let Some(endpoint) = section.endpoint {
        builder = builder.endpoint(endpoint);
    }
    builder
        .build()
        .and_then(|store| CachedStore::new(store, cache))
        .map_err(|err| located_store_error(location, err))
}
