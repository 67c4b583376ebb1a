//! [`PrivateKeyConfig`]: a client's private key as a configuration file names it.

use std::path::PathBuf;

use identity_core::{ConfigEnv, ConfigError};
use serde::Deserialize;

use crate::PrivateKey;

/// A client's private key for `private_key_jwt` (RFC 7523), as a configuration file names it:
/// a PKCS#8 PEM file (relative to the configuration), its algorithm (`ES256`, `EdDSA` or
/// `RS256`; `ES256` when absent) and the key id the authorization server knows it by. The key
/// itself is never in the configuration. Unknown fields are refused.
///
/// ```
/// use std::path::Path;
/// use identity_core::ConfigEnv;
/// use identity_http::PrivateKeyConfig;
///
/// let config: PrivateKeyConfig = serde_json::from_value(serde_json::json!({
///     "file": "keys/agent.pem", "key_id": "agent-2026"
/// }))?;
/// assert_eq!(config.algorithm, "ES256");
/// let err = config.load(&ConfigEnv::process(Path::new("/nonexistent")), "store `x`", "private_key").unwrap_err();
/// assert!(err.to_string().starts_with("store `x`, field `private_key.file`: cannot read /nonexistent/keys/agent.pem"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PrivateKeyConfig {
    /// The PEM file.
    pub file: PathBuf,
    /// `ES256`, `EdDSA` or `RS256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// The key id (`kid`) the server knows the key by.
    pub key_id: Option<String>,
}

fn default_algorithm() -> String {
    "ES256".into()
}

impl PrivateKeyConfig {
    /// Reads the key; problems are placed at `location` and `field` (the configuration's name
    /// for this key, e.g. `private_key`).
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let dir = std::env::temp_dir().join(format!("key-config-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("k.pem"), "not a key").unwrap();
    /// let config: identity_http::PrivateKeyConfig =
    ///     serde_json::from_value(serde_json::json!({ "file": "k.pem", "algorithm": "RS256" }))?;
    /// let err = config.load(&ConfigEnv::process(&dir), "store `x`", "private_key").unwrap_err();
    /// assert_eq!(err.field.as_deref(), Some("private_key.file"));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn load(
        &self,
        env: &ConfigEnv<'_>,
        location: &str,
        field: &str,
    ) -> Result<PrivateKey, ConfigError> {
        let path = env.path(&self.file);
        let file_field = format!("{field}.file");
        let pem = std::fs::read(&path).map_err(|err| {
            ConfigError::new(
                location,
                Some(&file_field),
                format!("cannot read {}: {err}", path.display()),
            )
        })?;
        PrivateKey::from_pem(&pem, &self.algorithm, self.key_id.clone()).map_err(|err| {
            let problem = match err {
                identity_core::Error::InvalidConfig(inner) => inner.problem,
                other => other.to_string(),
            };
            let field = if problem.contains("algorithm must") {
                format!("{field}.algorithm")
            } else {
                file_field
            };
            ConfigError::new(location, Some(&field), problem)
        })
    }
}
