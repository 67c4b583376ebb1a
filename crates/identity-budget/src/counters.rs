//! [`Counters`]: where allowances, calls in flight and spend are counted; [`MemoryCounters`]
//! counts them in this process.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use governor::RateLimiter;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use identity_core::{ConfigError, Error};

use crate::config::BudgetConfig;

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
/// [`Budgets`](crate::Budgets); `key` is whose allowance (a rule id, credential id, user or
/// workload).
///
/// Counters shared by replicas answer over the network: every method may fail, and the
/// [`Budgets`](crate::Budgets) gate then refuses the call (it never grants what it could not
/// count).
///
/// ```
/// fn takes(_: &dyn identity_budget::Counters) {}
/// takes(&identity_budget::MemoryCounters::new(&[]).unwrap());
/// ```
#[async_trait]
pub trait Counters: Send + Sync + fmt::Debug + 'static {
    /// Takes one request from `key`'s allowance under `budget`.
    async fn take(&self, budget: usize, key: &str) -> Result<Taken, Error>;

    /// Enters one call of `key` under `budget`, at most `limit` at once: the slot, given back
    /// when dropped, or `None` when all are taken.
    async fn enter(&self, budget: usize, key: &str, limit: u32) -> Result<Option<Slot>, Error>;

    /// Adds `micro_usd` to what `key` spent under `budget` on `day` (days since 1970-01-01,
    /// UTC), and gives the day's total.
    async fn add_spend(
        &self,
        budget: usize,
        key: &str,
        day: i64,
        micro_usd: u64,
    ) -> Result<u64, Error>;

    /// What `key` spent under `budget` on `day`, in micro-dollars.
    async fn spent(&self, budget: usize, key: &str, day: i64) -> Result<u64, Error>;
}

/// How long a call's slot counts at most in counters shared by replicas: a replica that dies
/// holding slots frees them after this long. A call streaming for longer no longer counts
/// against the limit.
pub const SLOT_TTL: Duration = Duration::from_secs(600);

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
    ///
    /// ```
    /// struct GiveBack;
    /// impl Drop for GiveBack {
    ///     fn drop(&mut self) { /* the count goes down */ }
    /// }
    /// let slot = identity_budget::Slot::new(GiveBack);
    /// drop(slot);
    /// ```
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
    /// Spend by budget and key: the day counted, and the micro-dollars spent on it.
    spend: Mutex<HashMap<(usize, String), (i64, u64)>>,
}

impl fmt::Debug for MemoryCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCounters")
            .field("budgets", &self.limiters.len())
            .finish_non_exhaustive()
    }
}

/// How many spend keys are kept before those of days gone by are forgotten.
const SPEND_KEYS_SWEPT: usize = 65_536;

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
            spend: Mutex::default(),
        })
    }
}

#[async_trait]
impl Counters for MemoryCounters {
    async fn take(&self, budget: usize, key: &str) -> Result<Taken, Error> {
        Ok(self.take_now(budget, key))
    }

    async fn enter(&self, budget: usize, key: &str, limit: u32) -> Result<Option<Slot>, Error> {
        Ok(self.enter_now(budget, key, limit))
    }

    async fn add_spend(
        &self,
        budget: usize,
        key: &str,
        day: i64,
        micro_usd: u64,
    ) -> Result<u64, Error> {
        Ok(self.add_spend_now(budget, key, day, micro_usd))
    }

    async fn spent(&self, budget: usize, key: &str, day: i64) -> Result<u64, Error> {
        Ok(self.spent_now(budget, key, day))
    }
}

impl MemoryCounters {
    fn take_now(&self, budget: usize, key: &str) -> Taken {
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

    fn enter_now(&self, budget: usize, key: &str, limit: u32) -> Option<Slot> {
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

    fn add_spend_now(&self, budget: usize, key: &str, day: i64, micro_usd: u64) -> u64 {
        let mut spend = self.spend.lock().unwrap_or_else(PoisonError::into_inner);
        // Days gone by are forgotten as keys come back, and all at once when many are kept.
        if spend.len() >= SPEND_KEYS_SWEPT {
            spend.retain(|_, (counted, _)| *counted >= day);
        }
        let entry = spend.entry((budget, key.to_owned())).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        entry.1 = entry.1.saturating_add(micro_usd);
        entry.1
    }

    fn spent_now(&self, budget: usize, key: &str, day: i64) -> u64 {
        let spend = self.spend.lock().unwrap_or_else(PoisonError::into_inner);
        match spend.get(&(budget, key.to_owned())) {
            Some((counted, micro_usd)) if *counted == day => *micro_usd,
            _ => 0,
        }
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
