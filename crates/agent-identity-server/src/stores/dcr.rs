//! `type = "dcr"`: access tokens of clients registered at run time. The section is the DCR
//! crate's [`DcrStoreConfig`], with the sidecar's choice of where clients are kept beside it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use agent_identity::identity_dcr::{
    ClientPersistence, DcrCredentialStore, DcrStoreConfig, FilePersistence, MemoryPersistence,
    SharedClients,
};
use agent_identity::{ConfigEnv, ConfigError};
use serde::Deserialize;

use super::shared::{Choice, SharedPlaces};
use super::{Beside, SidecarFields, keyring};

/// A `[stores.<name>]` of `type = "dcr"`.
pub(crate) type DcrSection = Beside<ClientsPlace, DcrStoreConfig>;

/// Where a DCR store keeps the clients it registered: in memory (a restart registers again), a
/// sealed file, or a Vault store or Redis server shared by every replica.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientsPlace {
    /// The sealed file (relative to the configuration file), or:
    clients_file: Option<PathBuf>,
    /// the `vault` store whose KV mount keeps them, shared by every replica (one registration
    /// per issuer and profile for all of them),
    clients_vault: Option<String>,
    /// under this path of its mount, or:
    #[serde(default = "default_clients_vault_prefix")]
    clients_vault_prefix: String,
    /// the `[redis.<name>]` server that keeps them, shared by every replica.
    clients_redis: Option<String>,
    /// The environment variable holding the current sealing key (32 bytes, base64), and the
    /// id it is recorded under.
    clients_key_env: Option<String>,
    #[serde(default = "default_clients_key_id")]
    clients_key_id: String,
    /// Older keys still accepted, by id: the environment variables holding them.
    #[serde(default)]
    clients_old_keys: BTreeMap<String, String>,
}

impl SidecarFields for ClientsPlace {
    const KEYS: &'static [&'static str] = &[
        "clients_file",
        "clients_vault",
        "clients_vault_prefix",
        "clients_redis",
        "clients_key_env",
        "clients_key_id",
        "clients_old_keys",
    ];
}

fn default_clients_vault_prefix() -> String {
    "agent-identity-clients".into()
}

pub(crate) fn default_clients_key_id() -> String {
    "default".into()
}

pub(crate) fn default_dcr_timeout() -> u64 {
    10_000
}

impl ClientsPlace {
    /// The persistence this place names; problems go to `errors` (memory stands in).
    fn persistence(
        &self,
        env: &ConfigEnv<'_>,
        (name, location): (&str, &str),
        places: &SharedPlaces,
        errors: &mut Vec<ConfigError>,
    ) -> Arc<dyn ClientPersistence> {
        let vars = |name: &str| env.var(name);
        let ring = self.clients_key_env.as_ref().map(|variable| {
            keyring(
                location,
                ("clients_key_env", variable, &self.clients_key_id),
                ("clients_old_keys", &self.clients_old_keys),
                &vars,
            )
        });
        let problem =
            |field: &str, problem: String| ConfigError::new(location, Some(field), problem);
        let shared = places.state(
            location,
            &Choice {
                vault: ("clients_vault", self.clients_vault.as_deref()),
                vault_prefix: ("clients_vault_prefix", &self.clients_vault_prefix),
                redis: ("clients_redis", self.clients_redis.as_deref()),
                namespace: "clients",
            },
        );
        let shared_field = if self.clients_redis.is_some() {
            "clients_redis"
        } else {
            "clients_vault"
        };
        let chosen: Result<Arc<dyn ClientPersistence>, ConfigError> = match (
            &self.clients_file,
            shared,
            ring,
        ) {
            (_, Err(err), _) | (_, _, Some(Err(err))) => Err(err),
            // In this process's memory (kept across reloads), under the store's name.
            (None, Ok(None), None) => Ok(Arc::new(SharedClients::new(
                places
                    .retained
                    .memory(&format!("dcr-{}", hex::encode(name))),
                places.retained.ring().clone(),
            ))),
            (Some(_), Ok(Some(_)), _) => Err(problem(
                shared_field,
                "names a second place for clients: keep `clients_file` or this".into(),
            )),
            (Some(file), Ok(None), Some(Ok(ring))) => {
                // The configuration is loaded without a runtime: the file is read at once.
                FilePersistence::open_blocking(env.path(file), ring)
                    .map(|file| Arc::new(file) as Arc<dyn ClientPersistence>)
                    .map_err(|err| problem("clients_file", err.to_string()))
            }
            (None, Ok(Some(state)), Some(Ok(ring))) => {
                Ok(Arc::new(SharedClients::new(state, ring)) as Arc<dyn ClientPersistence>)
            }
            (Some(_), Ok(None), None) => Err(problem(
                "clients_file",
                "`clients_file` and `clients_key_env` go together (the file's secrets are sealed)"
                    .into(),
            )),
            (None, Ok(Some(_)), None) => Err(problem(
                shared_field,
                "needs `clients_key_env` (the clients' secrets kept there are sealed)".into(),
            )),
            (None, Ok(None), Some(Ok(_))) => Err(problem(
                "clients_key_env",
                "is set without `clients_file`, `clients_vault` or `clients_redis`".into(),
            )),
        };
        chosen.unwrap_or_else(|err| {
            errors.push(err);
            Arc::new(MemoryPersistence::default())
        })
    }
}

/// Builds a DCR store; `places` are the configuration's Vault stores and Redis servers, by
/// name (for `clients_vault` and `clients_redis`).
pub(crate) fn dcr_store(
    section: DcrSection,
    env: &ConfigEnv<'_>,
    (name, location): (&str, &str),
    places: &SharedPlaces,
) -> Result<DcrCredentialStore, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let persistence = section
        .sidecar
        .persistence(env, (name, location), places, &mut errors);
    match section.store.build(env, location, persistence) {
        Ok(store) if errors.is_empty() => Ok(store),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}
