//! A [`CredentialStore`](identity_core::CredentialStore) over HashiCorp Vault's KV v2 engine
//! (OpenBao too), through vaultrs: [`VaultCredentialStore`].
//!
//! It keeps fixed credentials that teams already manage in Vault: one KV entry per credential at
//! `<mount>/data/<prefix>/<ref>`, the credential's JSON with its secret in a field of its own.
//! It authenticates with a token, AppRole or Kubernetes ([`VaultAuth`]), renews its token and logs
//! in again by itself, lists with bounded parallelism and takes migration leases
//! with check-and-set writes. [`VaultDocuments`] gives other state that replicas share (users'
//! connections) the same session and check-and-set.
//!
//! Reads reach Vault each time: `identity_cache::CachedStore` wraps the store in a read cache.
//!
//! The crate has no features. It does **not** issue dynamic secrets (database, cloud) or use any engine but KV v2, and it
//! does not create mounts or policies: the operator does, with a policy such as
//!
//! ```hcl
//! path "secret/data/agent-identity/*"            { capabilities = ["create", "read", "update", "delete"] }
//! path "secret/metadata/agent-identity"          { capabilities = ["list"] }
//! path "secret/metadata/agent-identity/*"        { capabilities = ["list", "read"] }
//! path "secret/data/agent-identity-leases/*"     { capabilities = ["create", "read", "update"] }
//! path "secret/metadata/agent-identity-leases/*" { capabilities = ["read"] }
//! ```
//!
//! (a read-only deployment needs only `read` and `list`). The token also needs the default
//! policy's `auth/token/lookup-self` and `renew-self`.
//!
//! vaultrs logs its own failed requests at `ERROR` level under the targets `vaultrs` and
//! `rustify`, including the 404 of an unknown ref; a service usually filters them out
//! (`vaultrs=off,rustify=off`) and relies on the errors this store returns.
//!
//! ```
//! use std::time::Duration;
//! use identity_core::{CredentialRef, CredentialStore, Error, RequestContext, ResourceKind, Secret};
//! use identity_vault::{VaultAuth, VaultCredentialStore};
//!
//! let store = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("s.example")))
//!     .timeout(Duration::from_secs(5))
//!     .build()?;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // A ref that could escape the prefix is refused before any request is made.
//! let escape = CredentialRef::new("../../sys/policy")?;
//! let context = RequestContext::builder().user_id("u").resource_id("r")
//!     .resource_kind(ResourceKind::Shared).provider("p")
//!     .model("m").action("read").trace_id("t").build().unwrap();
//! let err = store.find_by_ref(&escape, &context).await.unwrap_err();
//! assert!(matches!(err, Error::InvalidArgument { argument: "credential ref", .. }));
//! # Ok::<(), Error>(()) })?;
//! # Ok::<(), Error>(())
//! ```

mod auth;
mod builder;
mod config;
mod documents;
mod dynamic;
mod failure;
mod path;
mod record;
mod store;

pub use auth::{DEFAULT_KUBERNETES_JWT_PATH, VaultAuth};
pub use builder::VaultStoreBuilder;
pub use config::{VaultAuthConfig, VaultConfig};
pub use documents::VaultDocuments;
pub use dynamic::{HeldLease, VaultDynamicSecrets};
pub use path::ALLOWED_PUNCTUATION;
pub use store::{DEFAULT_MOUNT, DEFAULT_PREFIX, DEFAULT_TIMEOUT, VaultCredentialStore};

/// The backend name in errors and audit events.
const BACKEND: &str = "vault";
