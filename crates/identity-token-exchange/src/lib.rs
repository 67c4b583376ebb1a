//! RFC 8693 token exchange for agent-identity: the calling user's token becomes a narrowly
//! scoped token for one downstream service, obtained from an authorization server when it is
//! needed, with no long-lived secret stored per user.
//!
//! This crate holds the protocol, free of I/O, so that every rule of it is tested without a
//! server: the exchange configuration and its checks ([`ExchangeConfig`]), the token request
//! ([`TokenRequest`]), the reading of the server's answer ([`read_token_response`]) and the cache
//! key that ties an exchanged token to the subject it was exchanged for ([`CacheKey`]). The
//! calls themselves, client authentication and the error model are `identity_http`'s.
//!
//! ```
//! use identity_core::Secret;
//! use identity_token_exchange::{ExchangeConfig, TokenRequest, read_token_response};
//!
//! let config = ExchangeConfig::builder("crm-token", "agent-identity")
//!     .token_endpoint("https://auth.example.com/oauth/token")
//!     .client_secret(Secret::new("client-secret"))
//!     .audience("https://crm.example.com")
//!     .scopes(["crm:read"])
//!     .build()?;
//! let request = TokenRequest::new(config.token_endpoint().unwrap(), &config, &Secret::new("the-users-token"), None);
//! assert_eq!(request.url().as_str(), "https://auth.example.com/oauth/token");
//! assert!(!format!("{request:?}").contains("the-users-token"));
//!
//! let answer = identity_http::Answer::new(200, None, br#"{
//!     "access_token": "downscoped", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
//!     "token_type": "Bearer", "expires_in": 300 }"#.to_vec());
//! let token = read_token_response(&config, &answer)?;
//! assert_eq!(token.access_token.expose_secret(), "downscoped");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod key;
mod protocol;
mod store;
mod store_config;

pub use config::{
    CallersActorToken, ExchangeConfig, ExchangeConfigBuilder, StaticToken, TokenSource, TokenType,
};
/// Client authentication, errors and codes are those of every OAuth call of the workspace.
pub use identity_http::{ClientAuth, OAuthError, OAuthErrorCode, PrivateKey};
pub use key::CacheKey;
pub use protocol::{ExchangedToken, TokenRequest, read_token_response};
pub use store::{TokenExchangeStore, TokenExchangeStoreBuilder};
pub use store_config::{ExchangeSlotConfig, TokenExchangeStoreConfig};
