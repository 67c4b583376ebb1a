//! [`TokenExchangeStoreConfig`]: a token-exchange store as a configuration file writes it.

use std::collections::BTreeMap;
use std::time::Duration;

use identity_core::{ConfigEnv, ConfigError, CredentialKind};
use identity_http::{ClientAuth, PrivateKeyConfig};
use serde::Deserialize;

use crate::{CallersActorToken, ExchangeConfig, StaticToken, TokenExchangeStore, TokenType};

/// A token-exchange store as a configuration file writes it: slots whose credential is the
/// caller's token exchanged at an authorization server (RFC 8693). Secrets (client secrets,
/// fixed subject and actor tokens) are named by environment variable; a private key for
/// `private_key_jwt` by its PEM file. Unknown fields are refused.
///
/// ```
/// use std::path::Path;
/// use identity_core::ConfigEnv;
/// use identity_token_exchange::TokenExchangeStoreConfig;
///
/// let config: TokenExchangeStoreConfig = serde_json::from_value(serde_json::json!({
///     "slots": [{
///         "ref": "crm", "client_id": "agent", "client_secret_env": "CRM_SECRET",
///         "token_endpoint": "https://auth.example.com/token",
///         "audience": ["https://crm.example.com"], "scopes": ["crm.read"]
///     }]
/// }))?;
/// let vars = |name: &str| (name == "CRM_SECRET").then(|| "s3cret".to_owned());
/// let store = config.build(&ConfigEnv::new(Path::new("."), &vars), "store `exchange`")
///     .map_err(|errors| errors[0].clone())?;
/// assert!(format!("{store:?}").contains("crm"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenExchangeStoreConfig {
    /// Tokens leave the cache this long before they expire, in seconds (30).
    #[serde(default = "default_skew")]
    pub skew_secs: u64,
    /// The longest one call to a token endpoint may take, in milliseconds (10,000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// How many times one exchange is tried at most (3).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Allow token endpoints and issuers at private and link-local addresses (an authorization
    /// server inside the network). Off: discovery that points inside is refused.
    #[serde(default)]
    pub allow_private: bool,
    /// The slots.
    pub slots: Vec<ExchangeSlotConfig>,
}

/// One slot of a [`TokenExchangeStoreConfig`].
///
/// ```
/// let slot: identity_token_exchange::ExchangeSlotConfig = serde_json::from_value(serde_json::json!({
///     "ref": "crm", "client_id": "agent", "issuer": "https://auth.example.com",
///     "client_auth": "private_key_jwt", "private_key": { "file": "agent.pem", "key_id": "k1" }
/// }))?;
/// assert_eq!(slot.client_auth, identity_token_exchange::ClientAuth::PrivateKeyJwt);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExchangeSlotConfig {
    /// The credential ref the slot serves.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The credential's display name.
    #[serde(default)]
    pub name: String,
    /// The credential's scope label.
    #[serde(default)]
    pub scope: String,
    /// The credential's provider.
    pub provider: Option<String>,
    /// The credential's kind (`user_delegated`).
    pub kind: Option<CredentialKind>,
    /// The credential's tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The token endpoint, or:
    pub token_endpoint: Option<String>,
    /// the issuer whose metadata names it.
    pub issuer: Option<String>,
    /// Allow a plain-HTTP endpoint on this machine (tests, a local server).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// The client id at the authorization server.
    pub client_id: String,
    /// How the client authenticates (`client_secret_basic`).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// The private key of `private_key_jwt`.
    pub private_key: Option<PrivateKeyConfig>,
    /// The environment variable holding a subject token for requests that carry none.
    pub subject_token_env: Option<String>,
    /// The environment variable holding the actor token (delegation).
    pub actor_token_env: Option<String>,
    /// Delegation by the calling workload: its own token, as authentication proved it (a
    /// JWT-SVID), is the actor token; a request without one is refused.
    #[serde(default)]
    pub actor_is_caller: bool,
    /// The actor token's type URI (an access token; a JWT when `actor_is_caller`).
    pub actor_token_type: Option<String>,
    /// `audience` parameters.
    #[serde(default)]
    pub audience: Vec<String>,
    /// `resource` parameters.
    #[serde(default)]
    pub resource: Vec<String>,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The subject token's type URI (an access token).
    pub subject_token_type: Option<String>,
    /// The requested token's type URI.
    pub requested_token_type: Option<String>,
    /// More form parameters.
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
    /// The lifetime of a token whose answer gives none, in seconds (300).
    pub default_lifetime_secs: Option<u64>,
}

fn default_skew() -> u64 {
    30
}

fn default_timeout() -> u64 {
    10_000
}

fn default_attempts() -> u32 {
    3
}

impl TokenExchangeStoreConfig {
    /// The store this configuration describes. Every problem is reported, each placed at
    /// `location` and its field (`slots[0].client_secret_env`, ...).
    ///
    /// ```
    /// # use std::path::Path;
    /// # use identity_core::ConfigEnv;
    /// let config: identity_token_exchange::TokenExchangeStoreConfig = serde_json::from_value(serde_json::json!({
    ///     "slots": [{ "ref": "crm", "client_id": "agent", "client_secret_env": "UNSET",
    ///                 "token_endpoint": "https://a.example/t", "subject_token_type": "not a uri" }]
    /// }))?;
    /// let none = |_: &str| None;
    /// let errors = config.build(&ConfigEnv::new(Path::new("."), &none), "store `x`").unwrap_err();
    /// let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
    /// assert_eq!(fields, ["slots[0].client_secret_env", "slots[0].subject_token_type"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn build(
        self,
        env: &ConfigEnv<'_>,
        location: &str,
    ) -> Result<TokenExchangeStore, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut store = TokenExchangeStore::builder()
            .skew(Duration::from_secs(self.skew_secs))
            .timeout(Duration::from_millis(self.timeout_ms))
            .attempts(self.attempts)
            .allow_private(self.allow_private);
        for (index, slot) in self.slots.into_iter().enumerate() {
            let field = |name: &str| format!("slots[{index}].{name}");
            match slot.exchange_config(env, location, &field) {
                Ok(config) => store = store.config(config),
                Err(mut more) => errors.append(&mut more),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        store.build().map_err(|err| vec![err.located(location)])
    }
}

impl ExchangeSlotConfig {
    fn exchange_config(
        self,
        env: &ConfigEnv<'_>,
        location: &str,
        field: &dyn Fn(&str) -> String,
    ) -> Result<ExchangeConfig, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut config = ExchangeConfig::builder(self.reference, self.client_id)
            .name(self.name)
            .credential_scope(self.scope)
            .allow_http_loopback(self.allow_http_loopback)
            .client_auth(self.client_auth)
            .scopes(self.scopes);
        if let Some(endpoint) = self.token_endpoint {
            config = config.token_endpoint(endpoint);
        }
        if let Some(issuer) = self.issuer {
            config = config.issuer(issuer);
        }
        for (key, value) in self.tags {
            config = config.tag(key, value);
        }
        if let Some(provider) = self.provider {
            config = config.provider(provider);
        }
        if let Some(kind) = self.kind {
            config = config.kind(kind);
        }
        for (name, variable, actor) in [
            ("subject_token_env", &self.subject_token_env, false),
            ("actor_token_env", &self.actor_token_env, true),
        ] {
            let Some(variable) = variable else { continue };
            match env.secret(location, &field(name), variable) {
                Ok(token) => {
                    let source = StaticToken::new(token);
                    config = if actor {
                        config.actor_source(source)
                    } else {
                        config.subject_source(source)
                    };
                }
                Err(err) => errors.push(err),
            }
        }
        if self.actor_is_caller {
            if self.actor_token_env.is_some() {
                errors.push(ConfigError::new(
                    location,
                    Some(&field("actor_is_caller")),
                    "and `actor_token_env` both name the actor; keep one",
                ));
            }
            config = config
                .actor_source(CallersActorToken)
                .actor_token_type(TokenType::JWT);
        }
        if let Some(variable) = &self.client_secret_env {
            match env.secret(location, &field("client_secret_env"), variable) {
                Ok(secret) => config = config.client_secret(secret),
                Err(err) => errors.push(err),
            }
        }
        if let Some(key) = &self.private_key {
            match key.load(env, location, &field("private_key")) {
                Ok(key) => config = config.private_key(key),
                Err(err) => errors.push(err),
            }
        }
        for audience in self.audience {
            config = config.audience(audience);
        }
        for resource in self.resource {
            config = config.resource(resource);
        }
        for (name, value) in self.extra_params {
            config = config.extra_param(name, value);
        }
        for (name, value) in [
            ("subject_token_type", self.subject_token_type),
            ("requested_token_type", self.requested_token_type),
            ("actor_token_type", self.actor_token_type),
        ] {
            let Some(value) = value else { continue };
            match TokenType::new(value) {
                Ok(token_type) if name == "subject_token_type" => {
                    config = config.subject_token_type(token_type);
                }
                Ok(token_type) if name == "actor_token_type" => {
                    config = config.actor_token_type(token_type);
                }
                Ok(token_type) => config = config.requested_token_type(token_type),
                Err(_) => errors.push(ConfigError::new(
                    location,
                    Some(&field(name)),
                    "is not an absolute URI",
                )),
            }
        }
        if let Some(seconds) = self.default_lifetime_secs {
            config = config.default_lifetime(Duration::from_secs(seconds));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // The slot's own checks place their problems at the slot (`token exchange `crm``).
        config.build().map_err(|err| vec![err])
    }
}
