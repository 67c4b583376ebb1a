//! `type = "memory"`: the reference's credentials JSON, secrets from the environment; the
//! section is [`MemoryConfig`].

use agent_identity::identity_memory::MemoryConfig;
use agent_identity::{ConfigEnv, ConfigError, Credential, MemoryCredentialStore};

/// The store, and its credentials without their secrets (the rules are checked against them).
pub(crate) fn memory_store(
    config: MemoryConfig,
    env: &ConfigEnv<'_>,
    location: &str,
) -> Result<(MemoryCredentialStore, Vec<Credential>), Vec<ConfigError>> {
    let store = config.build(env, location)?;
    let listed = store.credentials_without_secrets();
    Ok((store, listed))
}
