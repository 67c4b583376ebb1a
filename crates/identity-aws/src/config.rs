//! [`AwsConfig`]: an AWS Secrets Manager store as a configuration file writes it.

use std::time::Duration;

use identity_core::{ConfigEnv, Error};
use serde::Deserialize;

use crate::{AwsSecretsManagerStore, AwsStoreBuilder, DEFAULT_PREFIX};

/// An AWS Secrets Manager store as a configuration file writes it. AWS credentials come from
/// the SDK's default chain (environment, profile, web identity, instance role), never from the
/// file. Unknown fields are refused. Turned into an [`AwsStoreBuilder`] by
/// [`builder`](Self::builder).
///
/// ```
/// use std::path::Path;
/// use identity_core::ConfigEnv;
/// use identity_aws::AwsConfig;
///
/// let config: AwsConfig = serde_json::from_value(serde_json::json!({
///     "region": "eu-west-1", "prefix": "team-a/"
/// }))?;
/// assert_eq!(config.attempts, 3);
/// let store = config.build(&ConfigEnv::process(Path::new(".")), "store `aws`")?;
/// assert!(format!("{store:?}").contains("team-a/"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AwsConfig {
    /// The region; without it, the SDK's region chain (`AWS_REGION`, profile, ...).
    pub region: Option<String>,
    /// Another endpoint than AWS's (a VPC endpoint, an emulator).
    pub endpoint: Option<String>,
    /// The prefix of every secret's name ([`DEFAULT_PREFIX`]).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The longest one call may take, in milliseconds (5,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many times one call is tried at most (3).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Days a deleted secret can still be restored (30).
    #[serde(default = "default_recovery_window")]
    pub recovery_window_days: i64,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.into()
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_attempts() -> u32 {
    3
}

fn default_recovery_window() -> i64 {
    30
}

impl AwsConfig {
    /// The builder this configuration describes. Nothing in it is read from `env` today; it is
    /// taken so that every backend's configuration is read the same way.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_aws::AwsConfig = serde_json::from_value(serde_json::json!({}))?;
    /// let builder = config.builder(&ConfigEnv::process(Path::new(".")), "store `aws`")?;
    /// assert!(format!("{builder:?}").contains("agent-identity/"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(self, _env: &ConfigEnv<'_>, _location: &str) -> Result<AwsStoreBuilder, Error> {
        let mut builder = AwsSecretsManagerStore::builder()
            .prefix(self.prefix)
            .timeout(Duration::from_millis(self.timeout_ms))
            .attempts(self.attempts)
            .recovery_window_days(Some(self.recovery_window_days));
        if let Some(region) = self.region {
            builder = builder.region(region);
        }
        if let Some(endpoint) = self.endpoint {
            builder = builder.endpoint(endpoint);
        }
        Ok(builder)
    }

    /// [`builder`](Self::builder), then [`AwsStoreBuilder::build`], its problems placed at
    /// `location`.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_aws::AwsConfig =
    ///     serde_json::from_value(serde_json::json!({ "attempts": 0 }))?;
    /// let err = config.build(&ConfigEnv::process(Path::new(".")), "store `aws`").unwrap_err();
    /// assert!(err.to_string().starts_with("store `aws`, field `attempts`"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(
        self,
        env: &ConfigEnv<'_>,
        location: &str,
    ) -> Result<AwsSecretsManagerStore, Error> {
        self.builder(env, location)?
            .build()
            .map_err(|err| err.located(location).into())
    }
}
