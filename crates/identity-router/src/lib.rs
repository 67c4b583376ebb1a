//! The rule router of agent-identity: for a request context, the credential it gets.
//!
//! A [`Router`] holds routing rules and the stores their credentials live in. For a context it
//! finds the highest-priority matching rule through an index (its cost does not grow with the
//! number of rules), asks that rule's store for the credential with the context, and checks it:
//! active, not expired, of the rule's kind, read-only when the rule says so. It returns a
//! [`Resolution`] (with the secret behind an explicit accessor) or a [`Denial`] with its reason,
//! and emits an audit event through `tracing` (target `agent_identity::audit`) either way.
//!
//! What this crate does not do: hold credentials (that is the stores' job), authenticate
//! callers (the sidecar does), or retry a store (stores do their own retries).
//!
//! ```
//! use identity_core::{Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret};
//! use identity_memory::MemoryCredentialStore;
//! use identity_router::Router;
//!
//! let store = MemoryCredentialStore::new();
//! store.insert(Credential::new("cred-alice", CredentialKind::UserDelegated, "alice-openai")?
//!     .with_secret(Secret::new("sk-alice")));
//! store.insert(Credential::new("cred-shared", CredentialKind::Fixed, "openai-shared")?
//!     .with_secret(Secret::new("sk-shared")));
//!
//! let router = Router::builder()
//!     .default_store(store)
//!     .rule(RoutingRule::new("alice", "alice-openai").with_priority(20).with_match_user_id("alice"))
//!     .rule(RoutingRule::new("everyone", "openai-shared").with_priority(0))
//!     .build()
//!     .expect("valid rules");
//!
//! let ctx = RequestContext::builder()
//!     .user_id("alice").resource_id("docs").resource_kind(ResourceKind::Personal)
//!     .provider("openai").model("gpt-4o").action("read").trace_id("trace-1")
//!     .build().expect("valid context");
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let resolution = router.resolve(&ctx).await.expect("granted");
//! assert_eq!(resolution.credential_id, "cred-alice");
//! assert_eq!(resolution.resolved_for, "alice");
//! # });
//! # Ok::<(), identity_core::Error>(())
//! ```

mod audit;
mod canary;
mod check;
mod gate;
mod glob;
mod index;
mod outcome;
mod refusals;
mod router;
mod rules;
mod scope;
mod usage;

pub use canary::Arm;
pub use gate::{Admission, Call, Gate, Intent, Purpose};
pub use outcome::{
    Denial, DenialReason, ExplainedOutcome, Explanation, PairDenial, Resolution, ResolvedPair,
    RuleVerdict,
};
pub use router::{
    BuildError, DEFAULT_CLOCK_SKEW, DEFAULT_STORE, Matching, ResolutionObserver, Router,
    RouterBuilder,
};
pub use rules::Mismatch;
pub use usage::{Usage, UsageMeter};
