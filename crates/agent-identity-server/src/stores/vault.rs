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
