//! Budgets: how many requests a rule, a credential, a user or a workload may be granted per
//! window, and how many calls it may have in flight, enforced as a router [`Gate`]: [`Budgets`].
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
//! The counts live behind [`Counters`]: [`MemoryCounters`] keeps them in this process; replicas
//! that must share a budget give a shared implementation.
//!
//! What this crate does not do yet: limit spend (money) per day.
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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use identity_core::ConfigError;
use identity_router::{Admission, DenialReason, Gate, Resolution};
use serde::Deserialize;

/// Whose requests a budget counts: each rule, credential, user or workload has an allowance of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Per {
    /// The rule that granted.
    Rule,
    /// The credential granted.
    Credential,
    /// The request's `userId`.
    User,
    /// The request's workload (`spiffeId`); requests without one are not counted.
    Workload,
}

/// One budget, as a configuration writes it (`[[budgets]]`).
///
/// ```
/// let budget: identity_budget::BudgetConfig = serde_json::from_value(serde_json::json!({
///     "id": "openai-per-user", "per": "user", "requests": 100, "window_secs": 60,
///     "rules": ["openai"]
/// }))?;
/// assert_eq!(budget.soft_percent, 80);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// The budget's id, named in denials and notifications.
    pub id: String,
    /// Whose requests it counts.
    pub per: Per,
    /// How many requests each may be granted per window (with `window_secs`).
    pub requests: Option<u32>,
    /// The window, in seconds.
    pub window_secs: Option<u64>,
    /// How many calls each may have in flight at once: a proxied call holds its slot until its
    /// answer has been passed on.
    pub concurrent: Option<u32>,
    /// Only resolutions by these rules count (every rule's when empty).
    #[serde(default)]
    pub rules: Vec<String>,
    /// The share of the allowance spent at which the notifier is told (80).
    #[serde(default = "default_soft_percent")]
    pub soft_percent: u8,
}

fn default_soft_percent() -> u8 {
    80
}

impl BudgetConfig {
    /// The budget's quota (`None` when it limits concurrency only), or what is wrong with it.
    fn quota(&self) -> Result<Option<Quota>, ConfigError> {
        let located = |field: &str, problem: &str| {
            ConfigError::new(format!("budget `{}`", self.id), Some(field), problem)
        };
        if self.soft_percent == 0 || self.soft_percent > 100 {
            return Err(located("soft_percent", "must be from 1 to 100"));
        }
        if self.concurrent == Some(0) {
            return Err(located("concurrent", "must be at least 1"));
        }
        let (requests, window_secs) = match (self.requests, self.window_secs) {
            (None, None) if self.concurrent.is_some() => return Ok(None),
            (None, None) => {
                return Err(located(
                    "requests",
                    "is missing: a budget limits `requests` per `window_secs`, `concurrent` calls, or both",
                ));
            }
            (Some(_), None) => return Err(located("window_secs", "is missing")),
            (None, Some(_)) => return Err(located("requests", "is missing")),
            (Some(requests), Some(window_secs)) => (requests, window_secs),
        };
        let requests =
            NonZeroU32::new(requests).ok_or_else(|| located("requests", "must be at least 1"))?;
        if window_secs == 0 {
            return Err(located("window_secs", "must be at least 1"));
        }
        let period = Duration::from_secs(window_secs) / requests.get();
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .map(|quota| Some(quota.allow_burst(requests)))
            .ok_or_else(|| located("window_secs", "is too short for that many requests"))
    }
}

/// The outcome of taking one request from an allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Granted; this many requests are left right now.
    Granted {
        /// Requests left in the allowance.
        remaining: u32,
    },
    /// Refused; one fits again after this long.
    Refused {
        /// The wait.
        retry_after: Duration,
    },
}

/// Where allowances are counted. `budget` is the budget's position in the list given to
/// [`Budgets`]; `key` is whose allowance (a rule id, credential id, user or workload).
pub trait Counters: Send + Sync + fmt::Debug + 'static {
    /// Takes one request from `key`'s allowance under `budget`.
    fn take(&self, budget: usize, key: &str) -> Taken;

    /// Enters one call of `key` under `budget`, at most `limit` at once: the slot, given back
    /// when dropped, or `None` when all are taken.
    fn enter(&self, budget: usize, key: &str, limit: u32) -> Option<Slot>;
}

/// A concurrency slot: given back when dropped.
pub struct Slot(
    #[allow(
        dead_code,
        reason = "held, never read: dropping it gives the slot back"
    )]
    Box<dyn Send + Sync>,
);

impl Slot {
    /// A slot that gives itself back by dropping `release`.
    pub fn new(release: impl Send + Sync + 'static) -> Self {
        Self(Box::new(release))
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot")
    }
}

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Allowances kept in this process's memory, one limiter per budget and a state per key.
pub struct MemoryCounters {
    limiters: Vec<Option<Limiter>>,
    /// Calls in flight, by budget and key; a key leaves when its last call ends.
    in_flight: Arc<Mutex<HashMap<(usize, String), u32>>>,
    clock: DefaultClock,
    /// Takes since the limiters last forgot keys whose allowance is full again.
    takes: AtomicU64,
}

impl fmt::Debug for MemoryCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCounters")
            .field("budgets", &self.limiters.len())
            .finish_non_exhaustive()
    }
}

/// How many takes between two sweeps of keys whose allowance is whole again, so that a budget
/// per user does not keep every user it ever saw.
const SWEEP_EVERY: u64 = 4096;

impl MemoryCounters {
    /// Counters for `budgets`, in their order; an error names the budget and field at fault.
    ///
    /// ```
    /// let budget: identity_budget::BudgetConfig = serde_json::from_value(serde_json::json!(
    ///     {"id": "b", "per": "user", "requests": 0, "window_secs": 60}))?;
    /// let err = identity_budget::MemoryCounters::new(&[budget]).unwrap_err();
    /// assert_eq!(err.to_string(), "budget `b`, field `requests`: must be at least 1");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new(budgets: &[BudgetConfig]) -> Result<Self, ConfigError> {
        let limiters = budgets
            .iter()
            .map(|budget| {
                budget.quota().map(|quota| {
                    quota.map(|quota| {
                        RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>()
                    })
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            limiters,
            in_flight: Arc::default(),
            clock: DefaultClock::default(),
            takes: AtomicU64::new(0),
        })
    }
}

impl Counters for MemoryCounters {
    fn take(&self, budget: usize, key: &str) -> Taken {
        let Some(Some(limiter)) = self.limiters.get(budget) else {
            // A budget this store was not made for, or one without a rate, counts nothing.
            return Taken::Granted {
                remaining: u32::MAX,
            };
        };
        if self.takes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for limiter in self.limiters.iter().flatten() {
                limiter.retain_recent();
            }
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => Taken::Granted {
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Taken::Refused {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    fn enter(&self, budget: usize, key: &str, limit: u32) -> Option<Slot> {
        let slot = (budget, key.to_owned());
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(slot.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        drop(in_flight);
        Some(Slot::new(MemorySlot {
            in_flight: self.in_flight.clone(),
            slot,
        }))
    }
}

impl MemoryCounters {
    fn release(in_flight: &Mutex<HashMap<(usize, String), u32>>, slot: &(usize, String)) {
        let mut in_flight = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(slot) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(slot);
            }
        }
    }
}

/// Gives a memory slot back when dropped.
struct MemorySlot {
    in_flight: Arc<Mutex<HashMap<(usize, String), u32>>>,
    slot: (usize, String),
}

impl Drop for MemorySlot {
    fn drop(&mut self) {
        MemoryCounters::release(&self.in_flight, &self.slot);
    }
}

/// Told when a key's allowance reaches a budget's soft threshold.
pub trait BudgetNotifier: Send + Sync + fmt::Debug + 'static {
    /// `key`'s allowance under `budget` has `remaining` of `requests` left.
    fn soft_limit_reached(&self, budget: &str, key: &str, remaining: u32, requests: u32);
}

/// Every problem of `configs`: a quota that cannot be, an id used twice.
fn check(configs: &[BudgetConfig]) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for config in configs {
        if let Err(err) = config.quota() {
            errors.push(err);
        }
        if !seen.insert(config.id.as_str()) {
            errors.push(ConfigError::new(
                format!("budget `{}`", config.id),
                Some("id"),
                "is used by another budget",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A budget, checked.
#[derive(Debug)]
struct Budget {
    config: BudgetConfig,
    /// At or below this many remaining requests, the soft threshold is reached.
    soft_remaining: u32,
}

/// The budgets of a router, as a [`Gate`]: each grant takes one request from the allowance of
/// every budget that counts it, and the first allowance that is spent refuses it.
///
/// A request refused by a later budget has still been counted by the earlier ones.
pub struct Budgets {
    budgets: Vec<Budget>,
    counters: Arc<dyn Counters>,
    notifier: Option<Arc<dyn BudgetNotifier>>,
    /// The (budget, key) pairs told of their soft threshold, until their allowance recovers.
    warned: Mutex<HashSet<(usize, String)>>,
    warned_count: AtomicUsize,
}

impl fmt::Debug for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field("budgets", &self.budgets)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Budgets {
    /// `configs`, counted in this process's memory. Every problem is reported, each at its
    /// budget and field.
    pub fn new(configs: Vec<BudgetConfig>) -> Result<Self, Vec<ConfigError>> {
        check(&configs)?;
        let counters = MemoryCounters::new(&configs).map_err(|err| vec![err])?;
        Ok(Self::checked(configs, Arc::new(counters)))
    }

    /// `configs`, counted by `counters` (shared between replicas, say).
    pub fn with_counters(
        configs: Vec<BudgetConfig>,
        counters: Arc<dyn Counters>,
    ) -> Result<Self, Vec<ConfigError>> {
        check(&configs)?;
        Ok(Self::checked(configs, counters))
    }

    fn checked(configs: Vec<BudgetConfig>, counters: Arc<dyn Counters>) -> Self {
        let budgets = configs
            .into_iter()
            .map(|config| {
                let requests = u64::from(config.requests.unwrap_or(0));
                let spent = requests * u64::from(config.soft_percent) / 100;
                let soft_remaining = u32::try_from(requests.saturating_sub(spent)).unwrap_or(0);
                Budget {
                    config,
                    soft_remaining,
                }
            })
            .collect();
        Self {
            budgets,
            counters,
            notifier: None,
            warned: Mutex::new(HashSet::new()),
            warned_count: AtomicUsize::new(0),
        }
    }

    /// Tells `notifier` of soft thresholds reached (they are logged in any case).
    #[must_use]
    pub fn notifier(mut self, notifier: impl BudgetNotifier) -> Self {
        self.notifier = Some(Arc::new(notifier));
        self
    }

    /// Notes that `key`'s allowance under budget `index` has `remaining` left: at the soft
    /// threshold, the first time tells the notifier; above it again, it may tell again later.
    fn note(&self, index: usize, key: &str, remaining: u32) {
        let budget = &self.budgets[index];
        let low = remaining <= budget.soft_remaining;
        // The common case, plenty left and nobody warned, takes no lock.
        if !low && self.warned_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if low {
            if warned.insert((index, key.to_owned())) {
                self.warned_count.store(warned.len(), Ordering::Relaxed);
                drop(warned);
                tracing::warn!(target: "agent_identity::audit", budget = %budget.config.id, key, remaining, requests = budget.config.requests.unwrap_or(0), "budget soft threshold reached");
                if let Some(notifier) = &self.notifier {
                    notifier.soft_limit_reached(
                        &budget.config.id,
                        key,
                        remaining,
                        budget.config.requests.unwrap_or(0),
                    );
                }
            }
        } else if warned.remove(&(index, key.to_owned())) {
            self.warned_count.store(warned.len(), Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl Gate for Budgets {
    async fn admit(
        &self,
        admission: &Admission<'_>,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason> {
        let context = admission.context;
        // Slots taken are kept by the resolution once every budget has admitted it; a refusal
        // drops (gives back) the ones taken before it.
        let mut slots = Vec::new();
        for (index, budget) in self.budgets.iter().enumerate() {
            let config = &budget.config;
            if !config.rules.is_empty()
                && !config
                    .rules
                    .iter()
                    .any(|rule| **rule == *resolution.rule_id)
            {
                continue;
            }
            let key = match config.per {
                Per::Rule => &*resolution.rule_id,
                Per::Credential => resolution.credential_id.as_str(),
                Per::User => context.user_id.as_str(),
                Per::Workload => match &context.spiffe_id {
                    Some(workload) => workload.as_str(),
                    None => continue,
                },
            };
            if let Some(limit) = config.concurrent {
                let Some(slot) = self.counters.enter(index, key, limit) else {
                    tracing::info!(target: "agent_identity::audit", budget = %config.id, key, "budget: too many calls at once");
                    return Err(DenialReason::BudgetExhausted {
                        budget: config.id.clone(),
                        retry_after_secs: 1,
                    });
                };
                slots.push(slot);
            }
            if config.requests.is_none() {
                continue;
            }
            match self.counters.take(index, key) {
                Taken::Granted { remaining } => self.note(index, key, remaining),
                Taken::Refused { retry_after } => {
                    tracing::info!(target: "agent_identity::audit", budget = %config.id, key, "budget exhausted");
                    return Err(DenialReason::BudgetExhausted {
                        budget: config.id.clone(),
                        // Whole seconds, rounded up: a client that waits that long fits.
                        retry_after_secs: retry_after
                            .as_secs()
                            .saturating_add(u64::from(retry_after.subsec_nanos() > 0))
                            .max(1),
                    });
                }
            }
        }
        for slot in slots {
            resolution.keep(slot);
        }
        Ok(())
    }
}
