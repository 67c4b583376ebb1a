//! One file per backend: each maps its `[stores.<name>]` section (TOML and environment) onto
//! the backend's own builder.

pub(crate) mod aws;
pub(crate) mod dcr;
pub(crate) mod memory;
pub(crate) mod oauth;
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

/// A store section with the sidecar's read cache in front of it: the backend's own
/// configuration `C` (unknown fields refused there), and beside it `cache_ttl_secs` (30; zero
/// turns the cache off) and `cache_capacity` (10,000 refs).
#[derive(Debug)]
pub(crate) struct Cached<C> {
    pub(crate) store: C,
    pub(crate) cache: CacheConfig,
}

impl<'de, C: serde::de::DeserializeOwned> serde::Deserialize<'de> for Cached<C> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut take = |key: &str, default: u64| match table.remove(key) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if n >= 0 => Ok(n.unsigned_abs()),
            Some(_) => Err(D::Error::custom(format!(
                "`{key}` must be a whole number of at least 0"
            ))),
        };
        let ttl = take("cache_ttl_secs", 30)?;
        let capacity = take("cache_capacity", 10_000)?;
        let store = toml::Value::Table(table)
            .try_into()
            .map_err(D::Error::custom)?;
        Ok(Self {
            store,
            cache: CacheConfig::default()
                .ttl(Duration::from_secs(ttl))
                .capacity(capacity),
        })
    }
}

/// A store builder's error, placed at the store's section.
pub(crate) fn located_store_error(location: &str, err: agent_identity::Error) -> ConfigError {
    err.located(location)
}

/// How a client comes to be at an authorization server, as a section writes it: a client
/// registered in advance (`client_id`, with its secret in `client_secret_env`; it belongs to one
/// issuer), or a Client ID Metadata Document (`client_metadata_url`), before dynamic
/// registration. Problems are pushed to `errors`, each with its field (`field` gives the full
/// name of a field).
pub(crate) struct ClientChoice<'a> {
    pub(crate) issuer: Option<&'a str>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret_env: Option<&'a str>,
    pub(crate) client_metadata_url: Option<&'a str>,
}

impl ClientChoice<'_> {
    pub(crate) fn apply(
        self,
        mut profile: agent_identity::identity_dcr::ClientProfile,
        location: &str,
        field: &dyn Fn(&str) -> String,
        env: &dyn Fn(&str) -> Option<String>,
        errors: &mut Vec<ConfigError>,
    ) -> agent_identity::identity_dcr::ClientProfile {
        use agent_identity::identity_dcr::RegisteredClient;
        if let Some(client_id) = self.client_id {
            let Some(issuer) = self.issuer else {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("client_id")),
                    "needs `issuer`: a client registered in advance belongs to one issuer",
                ));
                return profile;
            };
            let secret = match self.client_secret_env {
                Some(variable) => match env(variable) {
                    Some(secret) if !secret.is_empty() => Some(secret),
                    _ => {
                        errors.push(ConfigError::new(
                            location,
                            Some(&field("client_secret_env")),
                            format!("environment variable `{variable}` is not set"),
                        ));
                        return profile;
                    }
                },
                None => None,
            };
            let mut answer = serde_json::json!({ "client_id": client_id });
            if let Some(secret) = secret {
                answer["client_secret"] = secret.into();
            }
            match RegisteredClient::from_registration_answer(issuer, answer) {
                Ok(client) => profile = profile.with_pre_registered(client),
                Err(err) => errors.push(ConfigError::new(
                    location,
                    Some(&field("client_id")),
                    err.to_string(),
                )),
            }
        } else if self.client_secret_env.is_some() {
            errors.push(ConfigError::new(
                location,
                Some(&field("client_secret_env")),
                "is set without `client_id`",
            ));
        }
        if let Some(text) = self.client_metadata_url {
            match url::Url::parse(text) {
                Ok(url) if url.scheme() == "https" && url.path() != "/" => {
                    profile = profile.with_metadata_document(url);
                }
                _ => errors.push(ConfigError::new(
                    location,
                    Some(&field("client_metadata_url")),
                    "must be an https URL with a path (the client's metadata document)",
                )),
            }
        }
        profile
    }
}
