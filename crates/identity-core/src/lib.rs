//! The model of agent-identity: credentials, request contexts, routing rules, the
//! [`CredentialStore`] trait and the error type every backend maps into.
//!
//! This crate does no I/O: it has no HTTP client, no Vault and no AWS code. Routing lives in
//! `identity-router`, stores in `identity-memory`, `identity-vault`, `identity-aws` and the
//! others; the `agent-identity` crate puts them together.
//!
//! # Secrets
//!
//! Secret material is a [`Secret`]: no `Display`, no `Serialize`, a redacted `Debug`, and one way
//! out, [`Secret::expose_secret`]. A credential's `ref` is a slot name, never the secret.
//!
//! # Features
//!
//! - `testing`: the store conformance suite ([`testing`]), for backend crates' tests.
//!
//! ```
//! use identity_core::{Credential, CredentialKind, RequestContext, ResourceKind, Secret};
//!
//! let credential = Credential::new("cred-1", CredentialKind::Fixed, "openai-prod")?
//!     .with_secret(Secret::new("sk-canary"));
//! let context = RequestContext::builder()
//!     .user_id("alice").resource_id("docs").resource_kind(ResourceKind::Shared)
//!     .provider("openai").model("gpt-4o").action("read").trace_id("t1")
//!     .build()
//!     .map_err(|e| identity_core::Error::InvalidArgument { argument: "context", problem: e.to_string() })?;
//! assert!(!format!("{credential:?} {context:?}").contains("sk-canary"));
//! # Ok::<(), identity_core::Error>(())
//! ```

mod approval;
mod body;
mod canary;
mod config_env;
mod context;
mod credential;
mod delivery;
mod error;
mod fields;
mod migration;
mod rule;
mod secret;
mod spiffe;
mod store;
mod stored;
mod timestamp;

#[cfg(feature = "testing")]
pub mod testing;

pub use approval::{ApprovalRequirement, DEFAULT_APPROVAL_TTL_SECS};
pub use canary::{Canary, CanaryWeight, StickTo};
pub use config_env::ConfigEnv;
pub use context::{
    FieldProblem, InvalidInput, MigrationPhase, Problem, RequestContext, RequestContextBuilder,
    ResourceKind, SubjectToken,
};
pub use credential::{Credential, CredentialKind, CredentialRef, CredentialStatus};
pub use delivery::Delivery;
pub use error::{BoxError, ConfigError, Error};
pub use migration::MigrationRequest;
pub use rule::{OneOrMany, RoutingRule, parse_credentials_json, parse_rules_json};
pub use secret::Secret;
pub use spiffe::SpiffeId;
pub use store::{Capabilities, CredentialStore, CredentialWriter, check_lease_arguments};
pub use stored::{MalformedEntry, SECRET_FIELD, decode_stored, encode_stored};
pub use timestamp::{InvalidTimestamp, format_rfc3339, parse_rfc3339};

/// Re-exported so that implementations of [`CredentialStore`] need not name the crate.
pub use async_trait::async_trait;
/// Re-exported: the time type of every timestamp in the model.
pub use time::OffsetDateTime;
