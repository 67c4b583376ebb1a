//! Approvals for agent-identity: a call whose rule or policy demands approval is held until
//! approvers approve that exact call, then passes once.
//!
//! [`Approvals`] is a router gate. A held call is refused with `approval_required` and an
//! approval id; approvers [`Approvals::approve`] or [`Approvals::reject`] it; a demand may
//! allow a [`Approvals::break_glass`] pass with a justification. The approval is bound to the
//! digest of the call, is used once, lapses (five minutes by default), cannot be given by the
//! caller that asked, and may need several distinct approvers out of a named set. A granted
//! approval is a statement signed with Ed25519 (a compact JWS) that any replica and any auditor
//! can check ([`ApprovalVerifier`]). Approvals are kept in an [`ApprovalStore`]: in memory, or
//! in a shared state (Vault, Redis) with check-and-set ([`SharedApprovals`]), so that replicas
//! share them and one approval is used once.
//!
//! ```
//! # use std::sync::Arc;
//! use identity_approval::{ApprovalSigner, Approvals, MemoryApprovals};
//! use identity_core::*;
//! use identity_router::{DenialReason, Intent, Purpose, Router};
//!
//! let approvals = Approvals::new(Arc::new(MemoryApprovals::default()), ApprovalSigner::generate("k1")?);
//! let store = identity_memory::MemoryCredentialStore::new();
//! store.insert(Credential::new("pay", CredentialKind::Fixed, "payments")?.with_secret(Secret::new("sk")));
//! let router = Router::builder().default_store(store)
//!     .rule(RoutingRule::new("payments", "payments").with_priority(1)
//!         .with_require_approval(ApprovalRequirement::default()))
//!     .gate(approvals.clone()).build()?;
//! let ctx = RequestContext::builder().user_id("alice").resource_id("r")
//!     .resource_kind(ResourceKind::Shared).provider("bank").model("m").action("write")
//!     .trace_id("t").build()?;
//! let intent = Intent::new(Purpose::Deliver).requested_by("agent");
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let denial = router.resolve_for(&ctx, &intent).await.unwrap_err();
//! let DenialReason::ApprovalRequired { approval_id, .. } = denial.reason else { panic!() };
//! assert!(approvals.approve(&approval_id, "agent").await.is_err()); // not its own
//! approvals.approve(&approval_id, "bob").await?;
//! assert!(router.resolve_for(&ctx, &intent).await.is_ok());
//! assert!(router.resolve_for(&ctx, &intent).await.is_err()); // used once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod approvals;
mod record;
mod shared;
mod signing;
mod store;

pub use approvals::{ApprovalError, ApprovalNotifier, Approvals};
pub use record::{Approval, ApprovalState, CallSummary, Vote};
pub use shared::SharedApprovals;
pub use signing::{
    ApprovalSigner, ApprovalVerifier, BreakGlassClaim, STATEMENT_ISSUER, STATEMENT_TYPE, Statement,
};
pub use store::{ApprovalStore, MemoryApprovals, Versioned};
