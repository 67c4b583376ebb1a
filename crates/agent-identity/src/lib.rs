//! agent-identity decides which credential an AI agent's request gets, and obtains it safely.
//!
//! For each request context (user, resource, provider, model, action, ...) a [`Router`] picks a
//! rule by priority, the rule names a credential, and a [`CredentialStore`] produces it. The
//! secret stays behind [`Secret::expose_secret`]: it never reaches a log, an error or a response
//! by accident.
//!
//! This crate gathers the others: the model ([`identity_core`], re-exported at the root), the
//! router ([`identity_router`]) and the stores, one feature each.
//!
//! # Features
//!
//! | feature | default | gives |
//! |---|---|---|
//! | `memory` | yes | [`MemoryCredentialStore`] |
//! | `axum` | no | [`layer`]: a tower layer and an axum extractor that resolve per request |
//! | `vault` | no | [`identity_vault`]: `VaultCredentialStore`, credentials in Vault's (or OpenBao's) KV v2 engine |
//! | `aws` | no | [`identity_aws`]: `AwsSecretsManagerStore`, credentials in AWS Secrets Manager |
//! | `token-exchange` | no | [`identity_token_exchange`]: `TokenExchangeStore`, narrowly scoped tokens per caller by RFC 8693; enables `http` |
//! | `http` | no | [`identity_http`]: the one outbound HTTP layer (address policy, client, OAuth requests and errors, discovery, introspection, token cache) |
//! | `cache` | no | [`identity_cache`]: `CachedStore`, a read cache any store can take (Vault, AWS) |
//! | `budget` | no | [`identity_budget`]: `Budgets`, requests per window per rule, credential, user or workload, as a router gate |
//! | `policy` | no | [`identity_policy`]: Cedar permission policies, `PolicyGate`, as a router gate |
//! | `approval` | no | [`identity_approval`]: `Approvals`, calls held until approvers approve that exact call, as a router gate |
//! | `attest` | no | [`identity_attest`]: signed attestations of resolutions (compact JWS, Ed25519 or ES256 keys with key ids, a JWKS, a verifier); [`identity_signing`]: the keys |
//! | `revocation` | no | [`identity_revocation`]: a credential or a secret revoked on every replica through a shared state, as a router gate that fails closed when out of date; enables `state` |
//! | `rotation` | no | [`identity_rotation`]: `RotatingStore`, credentials rotated after days or uses through any writable store, once across replicas, the previous version valid for a grace window then retired; enables `state` |
//! | `state` | no | [`identity_state`]: `SharedState`, what replicas share (versioned documents by check-and-set, leases), in memory; `vault` adds Vault's (`VaultDocuments`), `redis` Redis's |
//! | `redis` | no | [`identity_redis`]: shared state in Redis (connections, registered clients, approvals, leases); enables `state` |
//! | `seal` | no | [`identity_seal`]: keyrings with per-purpose keys, AES-256-GCM sealed boxes, private files |
//! | `dcr` | no | [`identity_dcr`]: dynamic client registration (RFC 7591/7592), the client registry, `DcrCredentialStore`; enables `http` and `seal` |
//! | `oauth` | no | [`identity_oauth`]: OAuth 2.1 client flows (PKCE, authorization code, refresh, revocation, client credentials), provider presets (GitHub, Google, OpenID, DCR, Kaggle), `DelegatedTokenStore`; enables `dcr` |
//! | `proxy` | no | [`identity_proxy`]: the injection proxy, calls to configured upstreams with the credential put in; enables `http` |
//! | `mcp` | no | [`identity_mcp`]: MCP clients authorized end to end, an rmcp transport client whose requests carry the user's token (refreshed, consent asked again when refused); enables `oauth` |
//!
//! The default build pulls neither the AWS SDK, vaultrs nor the redis crate. Users' connections
//! (`oauth`), registered clients (`dcr`) and approvals (`approval`) are kept in any
//! `SharedState`: enable `vault` or `redis` for a backend replicas share.
//!
//! # Quickstart
//!
//! ```
//! use agent_identity::{Credential, CredentialKind, MemoryCredentialStore, RequestContext,
//!                      ResourceKind, Router, RoutingRule, Secret};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryCredentialStore::new();
//! store.insert(Credential::new("cred-openai", CredentialKind::Fixed, "openai-prod")?
//!     .with_scope("read write").with_secret(Secret::new("sk-live-123")));
//!
//! let router = Router::builder()
//!     .default_store(store)
//!     .rule(RoutingRule::new("openai", "openai-prod").with_priority(10).with_match_provider("openai"))
//!     .build()?;
//!
//! let ctx = RequestContext::builder()
//!     .user_id("alice").resource_id("crm").resource_kind(ResourceKind::Shared)
//!     .provider("openai").model("gpt-4o").action("read").trace_id("trace-1")
//!     .build()?;
//!
//! let resolution = router.resolve(&ctx).await?;
//! assert_eq!((resolution.credential_id.as_str(), resolution.resolved_for.as_str()), ("cred-openai", "service"));
//! let api_key = resolution.secret().map(|s| s.expose_secret()); // only where it is sent
//! # assert_eq!(api_key, Some("sk-live-123"));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

#[cfg(feature = "axum")]
pub mod layer;

pub use identity_core::*;
pub use identity_router::{
    Admission, Arm, BuildError, Call, DEFAULT_CLOCK_SKEW, DEFAULT_STORE, Denial, DenialReason,
    ExplainedOutcome, Explanation, Gate, Intent, Matching, Mismatch, PairDenial, Purpose,
    Resolution, ResolutionObserver, ResolvedPair, Router, RouterBuilder, RuleVerdict, Usage,
    UsageMeter,
};

#[cfg(feature = "memory")]
pub use identity_memory::MemoryCredentialStore;

/// The model crate, for items not re-exported at the root.
pub use identity_core;
/// The memory store crate.
#[cfg(feature = "memory")]
pub use identity_memory;
/// The router crate.
pub use identity_router;
/// The RFC 8693 token exchange crate.
#[cfg(feature = "token-exchange")]
pub use identity_token_exchange;

/// The Vault / OpenBao store.
#[cfg(feature = "vault")]
pub use identity_vault;

/// The AWS Secrets Manager store.
#[cfg(feature = "aws")]
pub use identity_aws;

/// Discovery and dynamic client registration.
#[cfg(feature = "dcr")]
pub use identity_dcr;

/// The one outbound HTTP layer: address policy, client, OAuth requests, discovery.
#[cfg(feature = "http")]
pub use identity_http;

/// Budgets, as a router gate.
#[cfg(feature = "budget")]
pub use identity_budget;
/// Permission policies in Cedar, as a router gate.
#[cfg(feature = "policy")]
pub use identity_policy;

/// Approvals bound to the exact call, as a router gate.
#[cfg(feature = "approval")]
pub use identity_approval;
/// Signed attestations of resolutions.
#[cfg(feature = "attest")]
pub use identity_attest;
/// Revocations on every replica, as a router gate.
#[cfg(feature = "revocation")]
pub use identity_revocation;
/// Rotation with grace over any writable store.
#[cfg(feature = "rotation")]
pub use identity_rotation;
/// Signing keys, JWS and JWKS.
#[cfg(feature = "attest")]
pub use identity_signing;

/// A read cache any store can take.
#[cfg(feature = "cache")]
pub use identity_cache;

/// Keyrings, sealed boxes and private files.
#[cfg(feature = "seal")]
pub use identity_seal;

/// Shared state for replicas (feature `state`).
#[cfg(feature = "state")]
pub use identity_state;

/// Shared state in Redis (feature `redis`).
#[cfg(feature = "redis")]
pub use identity_redis;

/// OAuth 2.1 client flows, provider presets and the delegated-token store.
#[cfg(feature = "oauth")]
pub use identity_oauth;

/// The injection proxy.
#[cfg(feature = "proxy")]
pub use identity_proxy;

/// MCP clients authorized end to end.
#[cfg(feature = "mcp")]
pub use identity_mcp;

/// The README's Rust example, run as a doc test so that it stays true.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
