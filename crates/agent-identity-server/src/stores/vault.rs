//! `type = "vault"`: Vault or OpenBao KV v2, its section read as [`VaultConfig`] with the read
//! cache's fields beside it.

use agent_identity::identity_vault::{VaultConfig, VaultCredentialStore};
use agent_identity::{ConfigEnv, ConfigError};

use super::{Beside, CacheFields};

/// A `[stores.<name>]` of `type = "vault"`.
pub(crate) type VaultSection = Beside<CacheFields, VaultConfig>;

pub(crate) fn vault_store(
    config: VaultConfig,
    env: &ConfigEnv<'_>,
    location: &str,
) -> Result<VaultCredentialStore, ConfigError> {
    config
        .build(env, location)
        .map_err(|err| err.located(location))
}

/// A `[stores.<name>]` of `type = "vault-dynamic"`: a new secret per resolution from a secrets
/// engine of a Vault store configured beside it (a ref names the engine's role).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VaultDynamicSection {
    /// The `[stores.<name>]` of `type = "vault"` whose address and token are used.
    vault: String,
    /// Where the secrets engine is mounted (`database`).
    mount: String,
}

impl VaultDynamicSection {
    /// The store, over the Vault store it names among `vaults`.
    pub(crate) fn store(
        &self,
        vaults: &std::collections::BTreeMap<String, std::sync::Arc<VaultCredentialStore>>,
        location: &str,
    ) -> Result<agent_identity::identity_vault::VaultDynamicSecrets, ConfigError> {
        let vault = vaults.get(&self.vault).ok_or_else(|| {
            ConfigError::new(
                location,
                Some("vault"),
                format!("names no store of type \"vault\": `{}`", self.vault),
            )
        })?;
        agent_identity::identity_vault::VaultDynamicSecrets::new(vault, self.mount.clone())
            .map_err(|err| ConfigError::new(location, Some("mount"), err.to_string()))
    }
}
