//! Where replicas keep what they share: a Vault store's KV mount, or a `[redis.<name>]` server.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_identity::ConfigError;
use agent_identity::identity_redis::Redis;
use agent_identity::identity_state::SharedState;
use agent_identity::identity_vault::VaultCredentialStore;

/// The places a section may name for shared state: the configuration's Vault stores and Redis
/// servers, by name.
#[derive(Debug, Default)]
pub(crate) struct SharedPlaces {
    pub(crate) vaults: BTreeMap<String, Arc<VaultCredentialStore>>,
    pub(crate) redis: BTreeMap<String, Redis>,
}

/// A section's choice of shared state: the field naming a Vault store (and the field giving
/// the path under its mount), the field naming a Redis server (and the namespace used there).
pub(crate) struct Choice<'a> {
    pub(crate) vault: (&'static str, Option<&'a str>),
    pub(crate) vault_prefix: (&'static str, &'a str),
    pub(crate) redis: (&'static str, Option<&'a str>),
    pub(crate) namespace: &'a str,
}

impl SharedPlaces {
    /// The shared state `choice` names in section `location`; `None` when it names none.
    pub(crate) fn state(
        &self,
        location: &str,
        choice: &Choice<'_>,
    ) -> Result<Option<Arc<dyn SharedState>>, ConfigError> {
        let problem = |field: &str, text: String| ConfigError::new(location, Some(field), text);
        let (vault_field, vault) = choice.vault;
        let (redis_field, redis) = choice.redis;
        match (vault, redis) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(problem(
                redis_field,
                format!("names a second place for what `{vault_field}` keeps: keep one"),
            )),
            (Some(name), None) => {
                let vault = self.vaults.get(name).ok_or_else(|| {
                    problem(
                        vault_field,
                        format!("names no store of type \"vault\": `{name}`"),
                    )
                })?;
                let (prefix_field, prefix) = choice.vault_prefix;
                let documents = vault
                    .documents(prefix)
                    .map_err(|err| problem(prefix_field, err.to_string()))?;
                Ok(Some(Arc::new(documents)))
            }
            (None, Some(name)) => {
                let redis = self.redis.get(name).ok_or_else(|| {
                    problem(redis_field, format!("names no `[redis.{name}]` section"))
                })?;
                let state = redis
                    .state(choice.namespace)
                    .map_err(|err| problem(redis_field, err.to_string()))?;
                Ok(Some(Arc::new(state)))
            }
        }
    }
}
