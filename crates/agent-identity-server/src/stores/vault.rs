//! `type = "vault"`: Vault or OpenBao KV v2.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_identity::{ConfigError, Secret};
use serde::Deserialize;

use super::located_store_error;

/// A `[stores.<name>]` of `type = "vault"`: credentials in a Vault (or OpenBao) KV v2 engine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VaultSection {
    /// The address, or:
    pub(crate) address: Option<String>,
    /// the environment variable holding it (`VAULT_ADDR`).
    pub(crate) address_env: Option<String>,
    #[serde(default = "default_vault_mount")]
    pub(crate) mount: String,
    #[serde(default = "default_vault_prefix")]
    pub(crate) prefix: String,
    pub(crate) lease_prefix: Option<String>,
    pub(crate) namespace: Option<String>,
    /// A PEM bundle of CAs to trust, relative to the configuration file.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// A client certificate and its key (PEM), for mutual TLS.
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    #[serde(default = "default_vault_timeout")]
    pub(crate) timeout_ms: u64,
    #[serde(default = "default_vault_cache_ttl")]
    pub(crate) cache_ttl_secs: u64,
    #[serde(default = "default_vault_cache_capacity")]
    pub(crate) cache_capacity: u64,
    #[serde(default = "default_vault_list_concurrency")]
    pub(crate) list_concurrency: usize,
    pub(crate) auth: VaultAuthSection,
}

fn default_vault_mount() -> String {
    agent_identity::identity_vault::DEFAULT_MOUNT.into()
}

fn default_vault_prefix() -> String {
    agent_identity::identity_vault::DEFAULT_PREFIX.into()
}

fn default_vault_timeout() -> u64 {
    5_000
}

pub(crate) fn default_vault_cache_ttl() -> u64 {
    30
}

pub(crate) fn default_vault_cache_capacity() -> u64 {
    10_000
}

fn default_vault_list_concurrency() -> usize {
    16
}

/// `[stores.<name>.auth]` of a Vault store. Secrets are named by environment variable.
#[derive(Debug, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum VaultAuthSection {
    /// A fixed token.
    Token {
        #[serde(default = "default_vault_token_env")]
        token_env: String,
    },
    /// AppRole.
    Approle {
        #[serde(default = "default_approle_mount")]
        mount: String,
        /// The role id, or:
        role_id: Option<String>,
        /// the environment variable holding it.
        role_id_env: Option<String>,
        #[serde(default = "default_secret_id_env")]
        secret_id_env: String,
    },
    /// Kubernetes.
    Kubernetes {
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        role: String,
        jwt_path: Option<PathBuf>,
    },
}

fn default_vault_token_env() -> String {
    "VAULT_TOKEN".into()
}

fn default_approle_mount() -> String {
    "approle".into()
}

fn default_secret_id_env() -> String {
    "VAULT_SECRET_ID".into()
}

fn default_kubernetes_mount() -> String {
    "kubernetes".into()
}

pub(crate) fn vault_store(
    section: VaultSection,
    base: &Path,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_vault::VaultCredentialStore, ConfigError> {
    use agent_identity::identity_vault::{VaultAuth, VaultCredentialStore};
    let located = |field: &str, problem: String| ConfigError::new(location, Some(field), problem);
    let from_env = |field: &str, variable: &str| match env(variable) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(located(
            field,
            format!("environment variable `{variable}` is not set"),
        )),
    };
    let address = match (section.address, section.address_env) {
        (Some(address), None) => address,
        (None, Some(variable)) => from_env("address_env", &variable)?,
        _ => {
            return Err(located(
                "address",
                "needs exactly one of `address` and `address_env`".into(),
            ));
        }
    };
    let auth = match section.auth {
        VaultAuthSection::Token { token_env } => {
            VaultAuth::token(Secret::new(from_env("auth.token_env", &token_env)?))
        }
        VaultAuthSection::Approle {
            mount,
            role_id,
            role_id_env,
            secret_id_env,
        } => {
            let role_id = match (role_id, role_id_env) {
                (Some(role_id), None) => role_id,
                (None, Some(variable)) => from_env("auth.role_id_env", &variable)?,
                _ => {
                    return Err(located(
                        "auth.role_id",
                        "needs exactly one of `role_id` and `role_id_env`".into(),
                    ));
                }
            };
            let secret_id = from_env("auth.secret_id_env", &secret_id_env)?;
            VaultAuth::app_role(role_id, Secret::new(secret_id)).with_mount(mount)
        }
        VaultAuthSection::Kubernetes {
            mount,
            role,
            jwt_path,
        } => {
            let auth = VaultAuth::kubernetes(role).with_mount(mount);
            match jwt_path {
                Some(path) => auth.with_jwt_path(base.join(path)),
                None => auth,
            }
        }
    };
    let mut builder = VaultCredentialStore::builder(address, auth)
        .mount(section.mount)
        .prefix(section.prefix)
        .timeout(Duration::from_millis(section.timeout_ms))
        .list_concurrency(section.list_concurrency);
    if let Some(prefix) = section.lease_prefix {
        builder = builder.lease_prefix(prefix);
    }
    if let Some(namespace) = section.namespace {
        builder = builder.namespace(namespace);
    }
    if let Some(path) = section.ca_bundle {
        builder = builder.ca_bundle(base.join(path));
    }
    match (section.client_cert, section.client_key) {
        (Some(cert), Some(key)) => {
            builder = builder.client_certificate(base.join(cert), base.join(key))
        }
        (None, None) => {}
        _ => {
            return Err(located(
                "client_cert",
                "`client_cert` and `client_key` go together".into(),
            ));
        }
    }
    builder
        .build()
        .map_err(|err| located_store_error(location, err))
}
