//! `type = "dcr"`: access tokens of clients registered at run time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity::{ConfigError, CredentialRef, Secret};
use serde::Deserialize;

use super::{ClientChoice, keyring};

/// A `[stores.<name>]` of `type = "dcr"`: slots whose credential is an access token obtained
/// with `client_credentials` by a client registered at run time (RFC 7591).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DcrSection {
    /// Allow plain http to loopback authorization servers (local servers, tests).
    #[serde(default)]
    pub(crate) allow_http_loopback: bool,
    /// Allow private and link-local addresses (an authorization server inside the network).
    #[serde(default)]
    pub(crate) allow_private: bool,
    #[serde(default = "default_dcr_timeout")]
    pub(crate) timeout_ms: u64,
    #[serde(default = "default_dcr_max_body")]
    pub(crate) max_body_bytes: usize,
    /// Where registered clients are kept (relative to the configuration file); in memory when
    /// absent, so a restart registers again.
    pub(crate) clients_file: Option<PathBuf>,
    /// Or: the `vault` store whose KV mount keeps them, shared by every replica (one
    /// registration per issuer and profile for all of them).
    pub(crate) clients_vault: Option<String>,
    /// Where under that store's mount (`agent-identity-clients`).
    #[serde(default = "default_clients_vault_prefix")]
    pub(crate) clients_vault_prefix: String,
    /// The environment variable holding the current key of the clients file (32 bytes,
    /// base64), and the id it is recorded under.
    pub(crate) clients_key_env: Option<String>,
    #[serde(default = "default_clients_key_id")]
    pub(crate) clients_key_id: String,
    /// Older keys still accepted, by id: the environment variables holding them.
    #[serde(default)]
    pub(crate) clients_old_keys: BTreeMap<String, String>,
    pub(crate) slots: Vec<DcrSlotSection>,
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

pub(crate) fn default_dcr_max_body() -> usize {
    1024 * 1024
}

/// One `[[stores.<name>.slots]]` of a DCR store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DcrSlotSection {
    #[serde(rename = "ref")]
    pub(crate) reference: String,
    /// The authorization server's issuer, or:
    pub(crate) issuer: Option<String>,
    /// the protected resource whose RFC 9728 metadata names it.
    pub(crate) resource: Option<String>,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// The client name registered (`agent-identity`).
    pub(crate) client_name: Option<String>,
    /// The client profile (one registration per issuer and profile); the ref by default.
    pub(crate) profile: Option<String>,
    /// The environment variable holding an initial access token, for servers that demand one.
    pub(crate) initial_access_token_env: Option<String>,
    /// A client registered in advance at `issuer` (a service account with a pre-issued id):
    /// used there instead of registering.
    pub(crate) client_id: Option<String>,
    /// The environment variable holding that client's secret.
    pub(crate) client_secret_env: Option<String>,
    /// The HTTPS URL of this client's metadata document, used as its client id where the
    /// server accepts Client ID Metadata Documents.
    pub(crate) client_metadata_url: Option<String>,
}

/// Builds a DCR store; `vaults` are the configuration's Vault stores, by name (for
/// `clients_vault`).
pub(crate) fn dcr_store(
    section: DcrSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
    vaults: &BTreeMap<String, Arc<agent_identity::identity_vault::VaultCredentialStore>>,
) -> Result<agent_identity::identity_dcr::DcrCredentialStore, Vec<ConfigError>> {
    use agent_identity::identity_dcr::{
        ClientMetadata, ClientPersistence, ClientProfile, ClientRegistry, Dcr, DcrCredentialStore,
        DcrSlot, FilePersistence, MemoryPersistence, Target, VaultClients,
    };
    let mut errors = Vec::new();
    let persistence: Arc<dyn ClientPersistence> =
        match (&section.clients_file, &section.clients_key_env) {
            (Some(_), _) if section.clients_vault.is_some() => {
                errors.push(ConfigError::new(
                    location,
                    Some("clients_vault"),
                    "names a second place for clients: keep `clients_file` or `clients_vault`",
                ));
                Arc::new(MemoryPersistence::default())
            }
            (None, variable) if section.clients_vault.is_some() => {
                let store = section.clients_vault.as_deref().unwrap_or_default();
                let ring = variable.as_ref().map(|variable| {
                    keyring(
                        location,
                        ("clients_key_env", variable, &section.clients_key_id),
                        ("clients_old_keys", &section.clients_old_keys),
                        env,
                    )
                });
                let documents = vaults.get(store).map(|vault| {
                    vault
                        .documents(&section.clients_vault_prefix)
                        .map_err(|err| {
                            ConfigError::new(
                                location,
                                Some("clients_vault_prefix"),
                                err.to_string(),
                            )
                        })
                });
                match (documents, ring) {
                    (Some(Ok(documents)), Some(Ok(ring))) => {
                        Arc::new(VaultClients::new(documents, ring))
                    }
                    (None, _) => {
                        errors.push(ConfigError::new(
                            location,
                            Some("clients_vault"),
                            format!("names no store of type \"vault\": `{store}`"),
                        ));
                        Arc::new(MemoryPersistence::default())
                    }
                    (_, None) => {
                        errors.push(ConfigError::new(
                            location,
                            Some("clients_vault"),
                            "needs `clients_key_env` (the clients' secrets kept there are sealed)",
                        ));
                        Arc::new(MemoryPersistence::default())
                    }
                    (Some(documents), Some(ring)) => {
                        errors.extend(documents.err());
                        errors.extend(ring.err());
                        Arc::new(MemoryPersistence::default())
                    }
                }
            }
            (None, None) => Arc::new(MemoryPersistence::default()),
            (Some(file), Some(variable)) => {
                let path = base.join(file);
                // The configuration is loaded without a runtime: the file is read synchronously.
                match keyring(
                    location,
                    ("clients_key_env", variable, &section.clients_key_id),
                    ("clients_old_keys", &section.clients_old_keys),
                    env,
                )
                .and_then(|ring| {
                    FilePersistence::open_blocking(&path, ring).map_err(|err| {
                        ConfigError::new(location, Some("clients_file"), err.to_string())
                    })
                }) {
                    Ok(file) => Arc::new(file),
                    Err(err) => {
                        errors.push(err);
                        Arc::new(MemoryPersistence::default())
                    }
                }
            }
            _ => {
                errors.push(ConfigError::new(
                location,
                Some("clients_file"),
                "`clients_file` and `clients_key_env` go together (the file's secrets are sealed)",
            ));
                Arc::new(MemoryPersistence::default())
            }
        };
    let policy = agent_identity::identity_http::OutboundPolicy::default()
        .allow_http_loopback(section.allow_http_loopback)
        .allow_private(section.allow_private)
        .timeout(Duration::from_millis(section.timeout_ms))
        .max_body(section.max_body_bytes);
    let mut slots = Vec::new();
    for (index, slot) in section.slots.into_iter().enumerate() {
        let field = |name: &str| format!("slots[{index}].{name}");
        let reference = match CredentialRef::new(slot.reference) {
            Ok(reference) => reference,
            Err(err) => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("ref")),
                    err.to_string(),
                ));
                continue;
            }
        };
        let issuer = slot.issuer.clone();
        let target = match (slot.issuer, slot.resource) {
            (Some(issuer), None) => policy
                .check_url(&issuer, "issuer")
                .map(|_| Target::Issuer(issuer)),
            (None, Some(resource)) => policy
                .check_url(&resource, "resource")
                .map(|_| Target::Resource(resource)),
            _ => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("issuer")),
                    "needs exactly one of `issuer` and `resource`",
                ));
                continue;
            }
        };
        let target = match target {
            Ok(target) => target,
            Err(err) => {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("issuer")),
                    err.to_string(),
                ));
                continue;
            }
        };
        let metadata = ClientMetadata::service(
            slot.client_name.unwrap_or_else(|| "agent-identity".into()),
            slot.scopes.join(" "),
        );
        let mut profile = ClientProfile::new(
            slot.profile.unwrap_or_else(|| reference.to_string()),
            metadata,
        );
        if let Some(variable) = &slot.initial_access_token_env {
            match env(variable) {
                Some(token) if !token.is_empty() => {
                    profile = profile.with_initial_access_token(Secret::new(token));
                }
                _ => errors.push(ConfigError::new(
                    location,
                    Some(&field("initial_access_token_env")),
                    format!("environment variable `{variable}` is not set"),
                )),
            }
        }
        let profile = ClientChoice {
            issuer: issuer.as_deref(),
            client_id: slot.client_id,
            client_secret_env: slot.client_secret_env.as_deref(),
            client_metadata_url: slot.client_metadata_url.as_deref(),
        }
        .apply(profile, location, &field, env, &mut errors);
        slots.push(DcrSlot {
            reference,
            target,
            scopes: slot.scopes,
            profile,
        });
    }
    let dcr = match Dcr::new(policy) {
        Ok(dcr) => dcr,
        Err(err) => {
            errors.push(ConfigError::new(location, None, err.to_string()));
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let registry = ClientRegistry::new(dcr, persistence);
    Ok(DcrCredentialStore::new(Arc::new(registry), slots))
}
