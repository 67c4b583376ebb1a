//! [`Budgets`]: the budgets of a router, as a [`Gate`].

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use identity_core::{ConfigError, OffsetDateTime};
use identity_router::{Admission, DenialReason, Gate, Resolution};

use crate::config::{BudgetConfig, Per, check};
use crate::counters::{Counters, MemoryCounters, Taken};
use crate::spend::{Prices, SpendBook, SpendMeter, day_of};

/// Told when a key's allowance reaches a budget's soft threshold.
pub trait BudgetNotifier: Send + Sync + fmt::Debug + 'static {
    /// `key`'s allowance under `budget` has `remaining` of `requests` left.
    fn soft_limit_reached(&self, budget: &str, key: &str, remaining: u32, requests: u32);

    /// `key` has spent `spent_usd` of its `max_usd` for the day under `budget`.
    fn spend_soft_limit_reached(&self, budget: &str, key: &str, spent_usd: f64, max_usd: f64);
}

/// A budget, checked.
#[derive(Debug)]
struct Budget {
    config: BudgetConfig,
    /// At or below this many remaining requests, the soft threshold is reached.
    soft_remaining: u32,
    /// At or above this spend in a day, in micro-dollars, the soft threshold is reached.
    soft_micro_usd: u64,
}

/// The budgets of a router, as a [`Gate`]: each grant takes one request from the allowance of
/// every budget that counts it, and the first allowance that is spent refuses it.
///
/// A request refused by a later budget has still been counted by the earlier ones.
pub struct Budgets {
    budgets: Vec<Budget>,
    counters: Arc<dyn Counters>,
    notifier: Option<Arc<dyn BudgetNotifier>>,
    /// What spend meters share: counters, prices, notifier.
    book: Arc<SpendBook>,
    clock: fn() -> OffsetDateTime,
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
                let soft_micro_usd = config.max_daily_micro_usd().map_or(0, |max| {
                    u64::try_from(u128::from(max) * u128::from(config.soft_percent) / 100)
                        .unwrap_or(max)
                });
                Budget {
                    config,
                    soft_remaining,
                    soft_micro_usd,
                }
            })
            .collect();
        let book = Arc::new(SpendBook {
            counters: counters.clone(),
            prices: Prices::default(),
            notifier: None,
            warned: Mutex::default(),
        });
        Self {
            budgets,
            counters,
            notifier: None,
            book,
            clock: OffsetDateTime::now_utc,
            warned: Mutex::new(HashSet::new()),
            warned_count: AtomicUsize::new(0),
        }
    }

    /// Tells `notifier` of soft thresholds reached (they are logged in any case).
    #[must_use]
    pub fn notifier(mut self, notifier: impl BudgetNotifier) -> Self {
        let notifier: Arc<dyn BudgetNotifier> = Arc::new(notifier);
        self.notifier = Some(notifier.clone());
        self.book = Arc::new(SpendBook {
            counters: self.counters.clone(),
            prices: self.book.prices.clone(),
            notifier: Some(notifier),
            warned: Mutex::default(),
        });
        self
    }

    /// Prices the usage of proxied calls with `prices`, for budgets with `max_daily_usd`.
    #[must_use]
    pub fn with_prices(mut self, prices: Prices) -> Self {
        self.book = Arc::new(SpendBook {
            counters: self.counters.clone(),
            prices,
            notifier: self.notifier.clone(),
            warned: Mutex::default(),
        });
        self
    }

    /// Reads the time (the day spend is counted in) from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// True when a budget limits spend: it needs [`Budgets::with_prices`].
    pub fn limits_spend(&self) -> bool {
        self.budgets
            .iter()
            .any(|budget| budget.config.max_daily_usd.is_some())
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

/// The refusal of a call whose budget could not be counted: never granted uncounted.
fn unavailable(config: &BudgetConfig, err: &identity_core::Error) -> DenialReason {
    tracing::warn!(target: "agent_identity::audit", budget = %config.id, error = %err, "budget counters unavailable: refused");
    DenialReason::StoreUnavailable {
        store: format!("budget `{}`", config.id),
        detail: err.to_string(),
        retryable: true,
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
        let mut meters = Vec::new();
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
                let Some(slot) = self
                    .counters
                    .enter(index, key, limit)
                    .await
                    .map_err(|err| unavailable(config, &err))?
                else {
                    tracing::info!(target: "agent_identity::audit", budget = %config.id, key, "budget: too many calls at once");
                    return Err(DenialReason::BudgetExhausted {
                        budget: config.id.clone(),
                        retry_after_secs: 1,
                    });
                };
                slots.push(slot);
            }
            if let Some(max_micro_usd) = config.max_daily_micro_usd() {
                let (day, left) = day_of((self.clock)());
                let spent = self
                    .counters
                    .spent(index, key, day)
                    .await
                    .map_err(|err| unavailable(config, &err))?;
                if spent >= max_micro_usd {
                    tracing::info!(target: "agent_identity::audit", budget = %config.id, key, "daily spend reached");
                    return Err(DenialReason::BudgetExhausted {
                        budget: config.id.clone(),
                        retry_after_secs: left,
                    });
                }
                meters.push(SpendMeter {
                    book: self.book.clone(),
                    budget: index,
                    budget_id: config.id.clone(),
                    key: key.to_owned(),
                    model: context.model.clone(),
                    max_micro_usd,
                    soft_micro_usd: budget.soft_micro_usd,
                    day,
                });
            }
            if config.requests.is_none() {
                continue;
            }
            match self
                .counters
                .take(index, key)
                .await
                .map_err(|err| unavailable(config, &err))?
            {
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
        for meter in meters {
            resolution.meter(meter);
        }
        Ok(())
    }
}
