//! One file per backend: each maps its `[stores.<name>]` section (TOML and environment) onto
//! the backend's own builder.

pub(crate) mod aws;
pub(crate) mod dcr;
pub(crate) mod memory;
pub(crate) mod oauth;
pub(crate) mod shared;
pub(crate) mod token_exchange;
pub(crate) mod vault;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_identity::ConfigError;
use agent_identity::identity_cache::CacheConfig;

use crate::environment::env_value;

/// A keyring whose current key is in environment variable `current.1` (id `current.2`), with
/// the older keys `old.1` (id → variable).
pub(crate) fn keyring(
    location: &str,
    current: (&str, &str, &str),
    old: (&str, &BTreeMap<String, String>),
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_seal::Keyring, ConfigError> {
    use agent_identity::identity_seal::Keyring;
    let (field, variable, id) = current;
    let mut ring = Keyring::from_base64(id, &env_value(location, field, variable, env)?)
        .map_err(|err| ConfigError::new(location, Some(field), err.to_string()))?;
    let (old_field, old_keys) = old;
    for (id, variable) in old_keys {
        let key = Keyring::from_base64(id.clone(), &env_value(location, old_field, variable, env)?)
            .map_err(|err| ConfigError::new(location, Some(old_field), err.to_string()))?;
        ring = ring.with_keys_of(&key);
    }
    Ok(ring)
}

/// Why a place for secrets cannot be used without the connections key.
pub(crate) const NEEDS_CONNECTIONS_KEY: &str =
    "needs `connections_key_env` (the tokens kept there are sealed)";

/// What keeps records of secrets: the file at `path`, sealed with `ring`, opened by `open`;
/// `memory()` when no file is named, or when the file cannot be used (the problem, with `field`
/// of `location`, goes to `errors`).
pub(crate) fn sealed_file<T: ?Sized>(
    (location, field): (&str, &str),
    path: Option<PathBuf>,
    ring: Option<&agent_identity::identity_seal::Keyring>,
    errors: &mut Vec<ConfigError>,
    open: impl FnOnce(
        PathBuf,
        agent_identity::identity_seal::Keyring,
    ) -> Result<Arc<T>, agent_identity::Error>,
    memory: impl FnOnce() -> Arc<T>,
) -> Arc<T> {
    let problem = match (path, ring) {
        (None, _) => return memory(),
        (Some(path), Some(ring)) => match open(path, ring.clone()) {
            Ok(file) => return file,
            Err(err) => err.to_string(),
        },
        (Some(_), None) => NEEDS_CONNECTIONS_KEY.into(),
    };
    errors.push(ConfigError::new(location, Some(field), problem));
    memory()
}

/// A store section: the backend's own configuration `C`, and beside it the sidecar's fields
/// `S` (the keys [`SidecarFields::KEYS`]: a read cache, where clients are kept). Each part
/// refuses the fields it does not know, so a misspelt key is an error, not a silent default.
#[derive(Debug)]
pub(crate) struct Beside<S, C> {
    pub(crate) sidecar: S,
    pub(crate) store: C,
}

/// The sidecar's own fields in a store section.
pub(crate) trait SidecarFields: serde::de::DeserializeOwned {
    /// Their keys.
    const KEYS: &'static [&'static str];
}

impl<'de, S: SidecarFields, C: serde::de::DeserializeOwned> serde::Deserialize<'de>
    for Beside<S, C>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut own = toml::Table::new();
        for key in S::KEYS {
            if let Some(value) = table.remove(*key) {
                own.insert((*key).to_owned(), value);
            }
        }
        Ok(Self {
            sidecar: toml::Value::Table(own)
                .try_into()
                .map_err(D::Error::custom)?,
            store: toml::Value::Table(table)
                .try_into()
                .map_err(D::Error::custom)?,
        })
    }
}

/// The read cache in front of a Vault or AWS store: `cache_ttl_secs` (30; zero turns it off)
/// and `cache_capacity` (10,000 refs).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheFields {
    #[serde(default = "default_cache_ttl")]
    cache_ttl_secs: u64,
    #[serde(default = "default_cache_capacity")]
    cache_capacity: u64,
}

impl SidecarFields for CacheFields {
    const KEYS: &'static [&'static str] = &["cache_ttl_secs", "cache_capacity"];
}

fn default_cache_ttl() -> u64 {
    30
}

fn default_cache_capacity() -> u64 {
    10_000
}

impl CacheFields {
    pub(crate) fn cache(&self) -> CacheConfig {
        CacheConfig::default()
            .ttl(Duration::from_secs(self.cache_ttl_secs))
            .capacity(self.cache_capacity)
    }
}

/// A store builder's error, placed at the store's section.
pub(crate) fn located_store_error(location: &str, err: agent_identity::Error) -> ConfigError {
    err.located(location)
}
