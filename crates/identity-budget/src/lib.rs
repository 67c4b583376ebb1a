//! Budgets: how many requests a rule, a credential, a user or a workload may be granted per
//! window, and how many calls it may have in flight, enforced as a router [`Gate`](identity_router::Gate): [`Budgets`].
//!
//! A budget may allow `concurrent` calls at once: a grant takes a slot, which the resolution
//! keeps ([`Resolution::keep`](identity_router::Resolution::keep)) until it and its clones are
//! dropped; a proxied call gives it back when its answer has been passed on. A budget may
//! allow `requests` per `window_secs`, counted by a generic cell rate algorithm
//! (`governor`): a full allowance may be spent at once, and it refills evenly over the window,
//! one request every `window / requests`. A resolution over a budget is refused with
//! `budget_exhausted`, naming the budget and how long until a request fits again (the sidecar
//! sends it as `Retry-After`). When a key's allowance falls to the soft threshold (80% spent by
//! default), the [`BudgetNotifier`] is told, once until the allowance recovers.
//!
//! A budget may allow `max_daily_usd` of spend per day (UTC): each resolution it admits carries
//! a meter ([`Resolution::meter`](identity_router::Resolution::meter)) told of the usage the
//! call's answer reports (the proxy reads it), priced from [`Prices`]; once the day's spend
//! reaches the limit, resolutions are refused until midnight UTC. A call is admitted on what
//! was spent before it, so the call that crosses the limit is not cut short.
//!
//! The counts live behind [`Counters`]: [`MemoryCounters`] keeps them in this process;
//! replicas that must share a budget count in a shared state (`StateCounters`, feature
//! `state`: Vault or any `identity_state::SharedState`) or in Redis (`identity_redis`'s
//! counters, one script per count). Every implementation passes one conformance suite
//! (`testing`, feature `testing`).
//!
//! ```
//! use identity_budget::{BudgetConfig, Budgets};
//! use identity_core::{Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret};
//!
//! let store = identity_memory::MemoryCredentialStore::new();
//! store.insert(Credential::new("c1", CredentialKind::Fixed, "openai")?.with_secret(Secret::new("sk")));
//! let budget: BudgetConfig = serde_json::from_value(serde_json::json!(
//!     {"id": "per-user", "per": "user", "requests": 2, "window_secs": 60}))?;
//! let router = identity_router::Router::builder()
//!     .default_store(store)
//!     .rule(RoutingRule::new("r1", "openai").with_priority(1))
//!     .gate(Budgets::new(vec![budget]).map_err(|errors| errors[0].clone())?)
//!     .build()?;
//! let context = RequestContext::builder().user_id("alice").resource_id("r")
//!     .resource_kind(ResourceKind::Shared).provider("openai").model("m").action("read")
//!     .trace_id("t").build()?;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! assert!(router.resolve(&context).await.is_ok());
//! assert!(router.resolve(&context).await.is_ok());
//! let denial = router.resolve(&context).await.unwrap_err();
//! assert_eq!(denial.reason.code(), "budget_exhausted");
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod budgets;
mod config;
mod counters;
#[cfg(feature = "state")]
mod shared;
mod spend;
#[cfg(feature = "testing")]
pub mod testing;

pub use budgets::{BudgetNotifier, Budgets};
pub use config::{BudgetConfig, Per};
pub use counters::{Counters, MemoryCounters, SLOT_TTL, Slot, Taken};
#[cfg(feature = "state")]
pub use shared::StateCounters;
pub use spend::{Price, Prices};
