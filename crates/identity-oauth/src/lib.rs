//! OAuth 2.1 client flows for agent-identity.
//!
//! - [`Pkce`] (`S256` only) and [`AuthorizationRequest`]: the authorize URL with `state`,
//!   `nonce`, scopes, `prompt`, `login_hint`, RFC 8707 resources and extra parameters, refused for
//!   a server that does not list `S256`; [`PendingAuthorization`] is what to keep for the
//!   callback.
//! - [`check_callback`]: the callback's `state` (compared in constant time) and RFC 9207 `iss`,
//!   before any code is exchanged.
//! - [`OAuthClient`]: code exchange with the exact `redirect_uri` and the verifier; refresh that
//!   keeps the old refresh token when the answer has none and turns a refused refresh token into
//!   "connect again"; revocation (refresh token, then access token); userinfo; client
//!   credentials with a cache and single flight.
//! - [`TokenSet`]: tokens with an absolute expiry and status helpers.
//! - [`Provider`]: an account users connect, with its client, scopes and quirks; [`Account`]:
//!   who the user is there.
//! - [`DelegatedTokenStore`]: each user's tokens per provider as `user-delegated` credentials,
//!   refreshed on read under a per-connection lock and a refresh lease, saved (compare-and-set)
//!   before use; "connect again" when the refresh token is refused; disconnect revokes, then
//!   forgets.
//!
//! Every call goes through `identity_http` (the address policy, one error model, discovery that
//! checks every endpoint URL); tokens are sealed with `identity_seal`. ID tokens are verified
//! (signature with the issuer's keys, `iss`, `aud`, `exp`, `nonce`) whenever `openid` is asked
//! for.
//!
//! Connections are kept in memory ([`MemoryTokens`]), in a file owned by one process
//! ([`FileTokens`]), or in a shared state that every replica reaches ([`SharedTokens`]: Vault
//! KV v2, Redis); tokens are sealed with AES-256-GCM under a rotating keyring in each.
//!
//! [`Provider`] presets: GitHub, Google, any OpenID provider from its discovery document, a
//! client registered at run time (DCR), and Kaggle-style personal API tokens.
//!
//! Features: `testing` (the conformance suite every [`TokenPersistence`] passes, [`testing`]).
//!
//! ```
//! use identity_http::{AuthorizationServerMetadata, OutboundPolicy};
//! use identity_oauth::{AuthorizationRequest, check_callback};
//!
//! let server = AuthorizationServerMetadata::from_json(serde_json::json!({
//!     "issuer": "https://as.example.com",
//!     "authorization_endpoint": "https://as.example.com/authorize",
//!     "code_challenge_methods_supported": ["S256"]}), "https://as.example.com", &OutboundPolicy::default())?;
//! let (url, pending) = AuthorizationRequest::new("agent", "https://app.example.com/cb").build(&server)?;
//! // ... the user comes back to the redirect URI with `code` and `state` ...
//! let forged = check_callback(&pending, &[("code", "c"), ("state", "guessed")]);
//! assert!(forged.is_err());
//! # Ok::<(), identity_core::Error>(())
//! ```

mod account;
mod config;
mod delegated;
mod file;
mod flow;
mod github;
mod id_token;
mod provider;
mod shared;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;

pub use account::Account;
pub use config::{Preset, ProviderConfig, ProviderContext, is_provider_name};
pub use delegated::{Connection, DelegatedTokenStore, MemoryTokens, TokenPersistence, Versioned};
pub use file::FileTokens;
pub use flow::{AuthorizationRequest, PendingAuthorization, Pkce, check_callback};
pub use provider::Provider;
pub use shared::SharedTokens;
pub use tokens::{OAuthClient, TokenSet};

/// The backend name in errors.
const BACKEND: &str = "oauth";
