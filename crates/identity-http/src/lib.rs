//! The one way agent-identity talks to the outside.
//!
//! Every outbound call of the workspace (token endpoints, registration, discovery, userinfo,
//! revocation, introspection, a provider's own API) goes through this crate, so that each rule
//! below holds everywhere and is tested once:
//!
//! - [`OutboundPolicy`]: HTTPS only (plain HTTP only to loopback, and only when allowed); private,
//!   link-local, unique-local, CGNAT, metadata, NAT64, 6to4 and other non-public addresses
//!   refused unless allowed, checked on every address actually connected to; no redirects; no
//!   proxy unless configured (the environment's `HTTPS_PROXY` is ignored); connect and total
//!   timeouts; a streaming cap on every body.
//! - [`HttpClient`]: the one client builder, and [`install_tls_provider`], the one place the TLS
//!   provider is installed.
//! - OAuth endpoint requests ([`HttpClient::token`], [`HttpClient::oauth_post`]): client
//!   authentication ([`ClientAuth`]: `client_secret_basic` with RFC 6749 §2.3.1 encoding,
//!   `client_secret_post`, `none`, `private_key_jwt` per RFC 7523), one token-response reader
//!   ([`TokenResponse`]: `expires_in` as a number or a numeric string, clamped to [0, one year]),
//!   one error model ([`OAuthError`], [`read_oauth_answer`]: a 4xx with an OAuth error object is
//!   a refusal with a typed, filtered code; 429 and 5xx retryable; 405 not supported), bounded
//!   retries with `Retry-After` ([`Retry`]).
//! - Discovery ([`HttpClient::discover`]: RFC 8414 with path insertion, then OpenID;
//!   [`HttpClient::discover_resource`]: RFC 9728), introspection ([`HttpClient::introspect`],
//!   RFC 7662) and revocation ([`HttpClient::revoke`], RFC 7009).
//! - [`TokenCache`] (expiry minus skew, single flight, failures not cached) and [`KeyedLocks`].
//!
//! What it does not do: follow redirects, keep cookies, or decide what a token is for. The
//! crates above it (token exchange, DCR, OAuth) hold the protocol flows.
//!
//! The crate has no features.
//!
//! ```
//! use identity_http::{HttpClient, OutboundPolicy};
//!
//! let http = HttpClient::new(OutboundPolicy::default())?;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // Discovery refuses a plain-http issuer before any request.
//! let err = http.discover("http://as.example.com").await.unwrap_err();
//! assert!(err.to_string().contains("https"));
//! # });
//! # Ok::<(), identity_core::Error>(())
//! ```

mod cache;
mod client;
mod discovery;
mod oauth;
mod policy;

pub use cache::{KeyedGuard, KeyedLocks, TokenCache};
pub use client::{Answer, HttpClient, install_tls_provider};
pub use discovery::{
    AuthorizationServerMetadata, ProtectedResourceMetadata, invalid_metadata,
    resource_metadata_from_challenge,
};
pub use oauth::auth::{ClientAuth, ClientCredentials, PrivateKey};
pub use oauth::error::{HttpFailure, OAuthError, OAuthErrorCode, read_oauth_answer};
pub use oauth::introspection::Introspection;
pub use oauth::key_file::PrivateKeyConfig;
pub use oauth::token::{MAX_LIFETIME, TokenKind, TokenResponse};
pub use oauth::{Form, Retry};
pub use policy::OutboundPolicy;

/// The backend name in errors of this crate's own (a URL refused, an answer too large).
const BACKEND: &str = "http";
