//! `type = "token-exchange"`: RFC 8693 slots; the section is [`TokenExchangeStoreConfig`].

use agent_identity::identity_token_exchange::{TokenExchangeStore, TokenExchangeStoreConfig};
use agent_identity::{ConfigEnv, ConfigError};

/// A `[stores.<name>]` of `type = "token-exchange"`.
pub(crate) type TokenExchangeSection = TokenExchangeStoreConfig;

pub(crate) fn token_exchange_store(
    section: TokenExchangeSection,
    env: &ConfigEnv<'_>,
    location: &str,
) -> Result<TokenExchangeStore, Vec<ConfigError>> {
    section.build(env, location)
}
