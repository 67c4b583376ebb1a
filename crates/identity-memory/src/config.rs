//! [`MemoryConfig`]: a memory store as a configuration file writes it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use identity_core::{
    ConfigEnv, ConfigError, Credential, CredentialRef, Error, parse_credentials_json,
};
use serde::Deserialize;

use crate::MemoryCredentialStore;

/// A memory store as a configuration file writes it: credentials in the reference's JSON shape
/// (a file, inline, or both), their secrets named by environment variable. Unknown fields are
/// refused.
///
/// ```
/// use std::path::Path;
/// use identity_core::ConfigEnv;
/// use identity_memory::MemoryConfig;
///
/// let config: MemoryConfig = serde_json::from_value(serde_json::json!({
///     "credentials": [{"id": "c1", "kind": "fixed", "name": "OpenAI", "scope": "read",
///                      "status": "active", "ref": "openai-prod"}],
///     "secrets": { "openai-prod": { "env": "OPENAI_KEY" } }
/// }))?;
/// let vars = |name: &str| (name == "OPENAI_KEY").then(|| "sk-live".to_owned());
/// let store = config.build(&ConfigEnv::new(Path::new("."), &vars), "store `default`")
///     .map_err(|errors| errors[0].clone())?;
/// assert_eq!(store.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// A file of credentials in the reference's JSON shape, relative to the configuration.
    pub credentials_file: Option<PathBuf>,
    /// Credentials inline, in the same camelCase shape.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// Secret material by credential ref.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretEnv>,
}

/// Where a memory store's secret comes from: an environment variable.
///
/// ```
/// let source: identity_memory::SecretEnv = serde_json::from_str(r#"{"env":"OPENAI_KEY"}"#)?;
/// assert_eq!(source.env, "OPENAI_KEY");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SecretEnv {
    /// The variable holding the secret.
    pub env: String,
}

impl MemoryConfig {
    /// The store this configuration describes. Every problem is reported, each placed at
    /// `location` (or at the credentials file) and its field: an unreadable file, a secret for
    /// a ref no credential has, an unset variable, two credentials with one ref.
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_memory::MemoryConfig = serde_json::from_value(serde_json::json!({
    ///     "credentials_file": "missing.json",
    ///     "secrets": { "nobody": { "env": "X" } }
    /// }))?;
    /// let none = |_: &str| None;
    /// let errors = config.build(&ConfigEnv::new(Path::new("/nonexistent"), &none), "store `m`").unwrap_err();
    /// assert_eq!(errors.len(), 2);
    /// assert_eq!(errors[1].field.as_deref(), Some("secrets.nobody"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn build(
        self,
        env: &ConfigEnv<'_>,
        location: &str,
    ) -> Result<MemoryCredentialStore, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut credentials = self.credentials;
        if let Some(file) = &self.credentials_file {
            let path = env.path(file);
            match std::fs::read_to_string(&path) {
                Ok(json) => match parse_credentials_json(&json) {
                    Ok(more) => credentials.extend(more),
                    Err(err) => errors.push(ConfigError::new(
                        path.display().to_string(),
                        None,
                        err.to_string(),
                    )),
                },
                Err(err) => errors.push(ConfigError::new(
                    location,
                    Some("credentials_file"),
                    format!("{}: {err}", path.display()),
                )),
            }
        }
        let mut secrets = BTreeMap::new();
        for (reference, source) in self.secrets {
            let field = format!("secrets.{reference}");
            let Ok(reference) = CredentialRef::new(reference) else {
                errors.push(ConfigError::new(
                    location,
                    Some(&field),
                    "is not a valid credential ref",
                ));
                continue;
            };
            if !credentials.iter().any(|c| c.reference == reference) {
                errors.push(ConfigError::new(
                    location,
                    Some(&field),
                    "names a ref no credential of this store has",
                ));
                continue;
            }
            match env.secret(location, &field, &source.env) {
                Ok(secret) => {
                    secrets.insert(reference, secret);
                }
                Err(err) => errors.push(err),
            }
        }
        for credential in &mut credentials {
            if let Some(secret) = secrets.remove(&credential.reference) {
                credential.secret = Some(secret);
            }
        }
        match MemoryCredentialStore::from_credentials(credentials) {
            Ok(store) if errors.is_empty() => Ok(store),
            Ok(_) => Err(errors),
            Err(Error::InvalidConfig(err)) => {
                // It names both credentials: their place says more than the store's.
                errors.push(err);
                Err(errors)
            }
            Err(other) => {
                errors.push(other.located(location));
                Err(errors)
            }
        }
    }
}
