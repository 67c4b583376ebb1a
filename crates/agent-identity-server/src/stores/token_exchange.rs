//! `type = "token-exchange"`: RFC 8693 slots.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_identity::{ConfigError, Secret};
use serde::Deserialize;

/// A `[stores.<name>]` of `type = "token-exchange"`: slots whose credential is the caller's
/// token exchanged at an authorization server (RFC 8693).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenExchangeSection {
    /// Tokens leave the cache this long before they expire.
    #[serde(default = "default_exchange_skew")]
    pub(crate) skew_secs: u64,
    /// The longest one call to a token endpoint may take.
    #[serde(default = "default_exchange_timeout")]
    pub(crate) timeout_ms: u64,
    /// How many times one exchange is tried at most.
    #[serde(default = "default_exchange_attempts")]
    pub(crate) attempts: u32,
    /// Allow token endpoints and issuers at private and link-local addresses (an authorization
    /// server inside the network). Off by default: discovery that points inside is refused.
    #[serde(default)]
    pub(crate) allow_private: bool,
    pub(crate) slots: Vec<ExchangeSlot>,
}

fn default_exchange_skew() -> u64 {
    30
}

fn default_exchange_timeout() -> u64 {
    10_000
}

fn default_exchange_attempts() -> u32 {
    3
}

/// One `[[stores.<name>.slots]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExchangeSlot {
    #[serde(rename = "ref")]
    pub(crate) reference: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) scope: String,
    pub(crate) provider: Option<String>,
    pub(crate) kind: Option<agent_identity::CredentialKind>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    /// The token endpoint, or:
    pub(crate) token_endpoint: Option<String>,
    /// the issuer whose metadata names it.
    pub(crate) issuer: Option<String>,
    #[serde(default)]
    pub(crate) allow_http_loopback: bool,
    pub(crate) client_id: String,
    /// The environment variable holding the client secret.
    pub(crate) client_secret_env: Option<String>,
    /// The environment variable holding a subject token for requests that carry none.
    pub(crate) subject_token_env: Option<String>,
    /// The environment variable holding the actor token (delegation).
    pub(crate) actor_token_env: Option<String>,
    #[serde(default)]
    pub(crate) client_auth: ExchangeClientAuth,
    #[serde(default)]
    pub(crate) audience: Vec<String>,
    #[serde(default)]
    pub(crate) resource: Vec<String>,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    pub(crate) subject_token_type: Option<String>,
    pub(crate) requested_token_type: Option<String>,
    #[serde(default)]
    pub(crate) extra_params: BTreeMap<String, String>,
    pub(crate) default_lifetime_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExchangeClientAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

pub(crate) fn token_exchange_store(
    section: TokenExchangeSection,
    location: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<agent_identity::identity_token_exchange::TokenExchangeStore, Vec<ConfigError>> {
    use agent_identity::identity_token_exchange::{
        ClientAuth, ExchangeConfig, StaticToken, TokenExchangeStore, TokenType,
    };
    let mut errors = Vec::new();
    let mut store = TokenExchangeStore::builder()
        .skew(Duration::from_secs(section.skew_secs))
        .timeout(Duration::from_millis(section.timeout_ms))
        .attempts(section.attempts)
        .allow_private(section.allow_private);
    for (index, slot) in section.slots.into_iter().enumerate() {
        let field = |name: &str| format!("slots[{index}].{name}");
        let mut config = ExchangeConfig::builder(slot.reference, slot.client_id)
            .name(slot.name)
            .credential_scope(slot.scope)
            .allow_http_loopback(slot.allow_http_loopback)
            .client_auth(match slot.client_auth {
                ExchangeClientAuth::ClientSecretBasic => ClientAuth::ClientSecretBasic,
                ExchangeClientAuth::ClientSecretPost => ClientAuth::ClientSecretPost,
                ExchangeClientAuth::None => ClientAuth::None,
            })
            .scopes(slot.scopes);
        if let Some(endpoint) = slot.token_endpoint {
            config = config.token_endpoint(endpoint);
        }
        if let Some(issuer) = slot.issuer {
            config = config.issuer(issuer);
        }
        for (key, value) in slot.tags {
            config = config.tag(key, value);
        }
        if let Some(provider) = slot.provider {
            config = config.provider(provider);
        }
        for (name, variable, actor) in [
            ("subject_token_env", &slot.subject_token_env, false),
            ("actor_token_env", &slot.actor_token_env, true),
        ] {
            let Some(variable) = variable else { continue };
            match env(variable) {
                Some(token) if !token.is_empty() => {
                    let source = StaticToken::new(Secret::new(token));
                    config = if actor {
                        config.actor_source(source)
                    } else {
                        config.subject_source(source)
                    };
                }
                _ => errors.push(ConfigError::new(
                    location,
                    Some(&field(name)),
                    format!("environment variable `{variable}` is not set"),
                )),
            }
        }
        if let Some(kind) = slot.kind {
            config = config.kind(kind);
        }
        if let Some(variable) = &slot.client_secret_env {
            match env(variable) {
                Some(secret) if !secret.is_empty() => {
                    config = config.client_secret(Secret::new(secret))
                }
                _ => {
                    errors.push(ConfigError::new(
                        location,
                        Some(&field("client_secret_env")),
                        format!("environment variable `{variable}` is not set"),
                    ));
                    continue;
                }
            }
        }
        for audience in slot.audience {
            config = config.audience(audience);
        }
        for resource in slot.resource {
            config = config.resource(resource);
        }
        for (name, value) in slot.extra_params {
            config = config.extra_param(name, value);
        }
        for (name, value, set) in [
            ("subject_token_type", slot.subject_token_type, true),
            ("requested_token_type", slot.requested_token_type, false),
        ] {
            let Some(value) = value else { continue };
            match TokenType::new(value) {
                Ok(token_type) if set => config = config.subject_token_type(token_type),
                Ok(token_type) => config = config.requested_token_type(token_type),
                Err(_) => errors.push(ConfigError::new(
                    location,
                    Some(&field(name)),
                    "is not an absolute URI",
                )),
            }
        }
        if let Some(seconds) = slot.default_lifetime_secs {
            config = config.default_lifetime(Duration::from_secs(seconds));
        }
        match config.build() {
            Ok(config) => store = store.config(config),
            Err(err) => errors.push(err),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    store.build().map_err(|err| vec![err])
}
