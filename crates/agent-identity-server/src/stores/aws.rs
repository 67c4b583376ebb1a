//! `type = "aws"`: AWS Secrets Manager, its section read as [`AwsConfig`] with the read cache's
//! fields beside it.

use agent_identity::identity_aws::{AwsConfig, AwsSecretsManagerStore};
use agent_identity::identity_cache::CachedStore;
use agent_identity::{ConfigEnv, ConfigError};

use super::{Beside, CacheFields};

/// A `[stores.<name>]` of `type = "aws"`.
pub(crate) type AwsSection = Beside<CacheFields, AwsConfig>;

pub(crate) fn aws_store(
    section: AwsSection,
    env: &ConfigEnv<'_>,
    location: &str,
) -> Result<CachedStore<AwsSecretsManagerStore>, ConfigError> {
    section
        .store
        .build(env, location)
        .and_then(|store| CachedStore::new(store, section.sidecar.cache()))
        .map_err(|err| err.located(location))
}
