//! [`VaultConfig`]: a Vault store as a configuration file writes it.

use std::path::PathBuf;
use std::time::Duration;

use identity_core::{ConfigEnv, ConfigError, Error};
use serde::Deserialize;

use crate::{DEFAULT_MOUNT, DEFAULT_PREFIX, VaultAuth, VaultCredentialStore, VaultStoreBuilder};

/// A Vault (or OpenBao) KV v2 store as a configuration file writes it; secrets are named by
/// environment variable, relative paths start at the configuration's directory. Unknown fields
/// are refused. Turned into a [`VaultStoreBuilder`] by [`builder`](Self::builder).
///
/// ```
/// use std::path::Path;
/// use identity_core::ConfigEnv;
/// use identity_vault::VaultConfig;
///
/// let config: VaultConfig = serde_json::from_value(serde_json::json!({
///     "address": "http://127.0.0.1:8200",
///     "prefix": "team-a",
///     "auth": { "method": "token", "token_env": "VAULT_TOKEN" }
/// }))?;
/// let vars = |name: &str| (name == "VAULT_TOKEN").then(|| "s.token".to_owned());
/// let store = config.build(&ConfigEnv::new(Path::new("."), &vars), "store `vault`")?;
/// assert!(format!("{store:?}").contains("team-a"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VaultConfig {
    /// The address (`https://vault.internal:8200`), or:
    pub address: Option<String>,
    /// the environment variable holding it (`VAULT_ADDR`).
    pub address_env: Option<String>,
    /// The KV v2 mount ([`DEFAULT_MOUNT`]).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Where credentials are kept under the mount ([`DEFAULT_PREFIX`]).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Where migration leases are kept (`<prefix>-leases`).
    pub lease_prefix: Option<String>,
    /// The Vault Enterprise namespace.
    pub namespace: Option<String>,
    /// A PEM bundle of CAs to trust.
    pub ca_bundle: Option<PathBuf>,
    /// A client certificate (PEM), for mutual TLS, with:
    pub client_cert: Option<PathBuf>,
    /// its private key (PEM).
    pub client_key: Option<PathBuf>,
    /// The longest one request may take, in milliseconds (5,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many entry reads a listing keeps in flight (16).
    #[serde(default = "default_list_concurrency")]
    pub list_concurrency: usize,
    /// How the store logs in.
    pub auth: VaultAuthConfig,
}

/// How a Vault store logs in, as a configuration writes it (`method = "token"`, `"approle"` or
/// `"kubernetes"`). Secrets are named by environment variable.
///
/// ```
/// let auth: identity_vault::VaultAuthConfig = serde_json::from_value(serde_json::json!({
///     "method": "kubernetes", "role": "agents"
/// }))?;
/// assert!(matches!(auth, identity_vault::VaultAuthConfig::Kubernetes { .. }));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum VaultAuthConfig {
    /// A fixed token.
    Token {
        /// The variable holding it (`VAULT_TOKEN`).
        #[serde(default = "default_token_env")]
        token_env: String,
    },
    /// AppRole.
    Approle {
        /// The auth mount (`approle`).
        #[serde(default = "default_approle_mount")]
        mount: String,
        /// The role id, or:
        role_id: Option<String>,
        /// the variable holding it.
        role_id_env: Option<String>,
        /// The variable holding the secret id (`VAULT_SECRET_ID`).
        #[serde(default = "default_secret_id_env")]
        secret_id_env: String,
    },
    /// Kubernetes service-account login.
    Kubernetes {
        /// The auth mount (`kubernetes`).
        #[serde(default = "default_kubernetes_mount")]
        mount: String,
        /// The Vault role.
        role: String,
        /// The service-account token file
        /// ([`DEFAULT_KUBERNETES_JWT_PATH`](crate::DEFAULT_KUBERNETES_JWT_PATH)).
        jwt_path: Option<PathBuf>,
    },
}

fn default_mount() -> String {
    DEFAULT_MOUNT.into()
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.into()
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_list_concurrency() -> usize {
    16
}

fn default_token_env() -> String {
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

/// Exactly one of a value and the variable holding it.
fn one_of(
    env: &ConfigEnv<'_>,
    location: &str,
    (field, value): (&str, Option<String>),
    (env_field, variable): (&str, Option<String>),
) -> Result<String, ConfigError> {
    match (value, variable) {
        (Some(value), None) => Ok(value),
        (None, Some(variable)) => env.value(location, env_field, &variable),
        _ => Err(ConfigError::new(
            location,
            Some(field),
            format!("needs exactly one of `{field}` and `{env_field}`"),
        )),
    }
}

impl VaultConfig {
    /// The builder this configuration describes, its secrets read from `env`; problems are
    /// placed at `location` (e.g. "store `vault`") and the field at fault.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_vault::VaultConfig = serde_json::from_value(serde_json::json!({
    ///     "address_env": "VAULT_ADDR", "auth": { "method": "token" }
    /// }))?;
    /// let none = |_: &str| None;
    /// let err = config.builder(&ConfigEnv::new(Path::new("."), &none), "store `v`").unwrap_err();
    /// assert_eq!(err.to_string(), "store `v`, field `address_env`: environment variable `VAULT_ADDR` is not set");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn builder(self, env: &ConfigEnv<'_>, location: &str) -> Result<VaultStoreBuilder, Error> {
        let address = one_of(
            env,
            location,
            ("address", self.address),
            ("address_env", self.address_env),
        )?;
        let auth = match self.auth {
            VaultAuthConfig::Token { token_env } => {
                VaultAuth::token(env.secret(location, "auth.token_env", &token_env)?)
            }
            VaultAuthConfig::Approle {
                mount,
                role_id,
                role_id_env,
                secret_id_env,
            } => {
                let role_id = one_of(
                    env,
                    location,
                    ("auth.role_id", role_id),
                    ("auth.role_id_env", role_id_env),
                )?;
                let secret_id = env.secret(location, "auth.secret_id_env", &secret_id_env)?;
                VaultAuth::app_role(role_id, secret_id).with_mount(mount)
            }
            VaultAuthConfig::Kubernetes {
                mount,
                role,
                jwt_path,
            } => {
                let auth = VaultAuth::kubernetes(role).with_mount(mount);
                match jwt_path {
                    Some(path) => auth.with_jwt_path(env.path(&path)),
                    None => auth,
                }
            }
        };
        let mut builder = VaultCredentialStore::builder(address, auth)
            .mount(self.mount)
            .prefix(self.prefix)
            .timeout(Duration::from_millis(self.timeout_ms))
            .list_concurrency(self.list_concurrency);
        if let Some(prefix) = self.lease_prefix {
            builder = builder.lease_prefix(prefix);
        }
        if let Some(namespace) = self.namespace {
            builder = builder.namespace(namespace);
        }
        if let Some(path) = self.ca_bundle {
            builder = builder.ca_bundle(env.path(&path));
        }
        match (self.client_cert, self.client_key) {
            (Some(cert), Some(key)) => {
                builder = builder.client_certificate(env.path(&cert), env.path(&key));
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::new(
                    location,
                    Some("client_cert"),
                    "`client_cert` and `client_key` go together",
                )
                .into());
            }
        }
        Ok(builder)
    }

    /// [`builder`](Self::builder), then [`VaultStoreBuilder::build`], its problems placed at
    /// `location` too.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_vault::VaultConfig = serde_json::from_value(serde_json::json!({
    ///     "address": "http://127.0.0.1:8200", "prefix": "../up", "auth": { "method": "token" }
    /// }))?;
    /// let vars = |_: &str| Some("t".to_owned());
    /// let err = config.build(&ConfigEnv::new(Path::new("."), &vars), "store `v`").unwrap_err();
    /// assert!(err.to_string().starts_with("store `v`, field `prefix`"), "{err}");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn build(self, env: &ConfigEnv<'_>, location: &str) -> Result<VaultCredentialStore, Error> {
        self.builder(env, location)?
            .build()
            .map_err(|err| err.located(location).into())
    }
}
