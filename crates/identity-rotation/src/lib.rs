//! Rotation with grace for agent-identity.
//!
//! A [`RotatingStore`] wraps any writable store (memory, Vault, AWS Secrets Manager): it counts
//! each resolution of a credential, and when the credential is due (after some time, or after
//! a number of uses, per [`RotationPolicy`]) it asks a [`SecretIssuer`] for a new secret and
//! writes the new version through the store. The resolution that found it due gets the new
//! version. The previous version is written beside it, in the slot `<ref>@previous`, expiring
//! at the end of the grace window: a consumer still holding the old secret keeps working, and
//! whoever must can resolve it until then. After the grace window it is retired: the issuer is
//! told (to revoke it upstream) and the slot is deleted.
//!
//! Across replicas the counts live in a [`SharedState`](identity_state::SharedState) and a rotation runs under a lease
//! there, so that one replica rotates, once. Every rotation and retirement is an audit event
//! (target `agent_identity::audit`), and a [`RotationObserver`] is told before a rotation is
//! due.
//!
//! ```
//! use std::sync::Arc;
//! use identity_core::*;
//! use identity_rotation::{RandomSecrets, RotatingStore, RotationPolicy};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = identity_memory::MemoryCredentialStore::new();
//! store.insert(Credential::new("webhook-v1", CredentialKind::Fixed, "webhook")?.with_secret(Secret::new("s0")));
//! let rotating = RotatingStore::new(
//!     store,
//!     Arc::new(identity_state::MemoryState::default()),
//!     Arc::new(RandomSecrets::new("whsec_")),
//!     RotationPolicy::after_uses(2).with_grace(std::time::Duration::from_secs(3600)),
//! )?;
//! let slot = CredentialRef::new("webhook")?;
//! let ctx = RequestContext::builder().user_id("u").resource_id("r").resource_kind(ResourceKind::Shared)
//!     .provider("p").model("m").action("read").trace_id("t").build().unwrap();
//! assert_eq!(rotating.find_by_ref(&slot, &ctx).await?.unwrap().id, "webhook-v1");
//! assert_eq!(rotating.find_by_ref(&slot, &ctx).await?.unwrap().id, "webhook-v1");
//! let third = rotating.find_by_ref(&slot, &ctx).await?.unwrap();
//! assert_eq!(third.id, "webhook-v2");
//! assert!(third.secret.unwrap().expose_secret().starts_with("whsec_"));
//! # Ok::<(), identity_core::Error>(())
//! # }).unwrap();
//! ```

mod issuer;
mod policy;
mod store;

pub use issuer::{RandomSecrets, SecretIssuer};
pub use policy::{RotationNotice, RotationObserver, RotationPolicy};
pub use store::{PREVIOUS_SUFFIX, RotatingStore};
