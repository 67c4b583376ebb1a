//! Spend per day: [`Prices`] of models, and the [`UsageMeter`] a spend budget puts on each
//! resolution it admits, which adds what the call cost to the day's spend.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use identity_core::{ConfigError, OffsetDateTime};
use identity_router::{Usage, UsageMeter};
use serde::Deserialize;

use crate::budgets::BudgetNotifier;
use crate::counters::Counters;

/// What a model costs, in US dollars per million tokens.
///
/// ```
/// let price: identity_budget::Price = serde_json::from_str(
///     r#"{"input_per_million": 2.5, "output_per_million": 10.0}"#)?;
/// assert_eq!(price.micro_usd(1_000, 100), 3_500);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Dollars per million tokens read.
    pub input_per_million: f64,
    /// Dollars per million tokens written.
    pub output_per_million: f64,
}

impl Price {
    /// What `input` tokens in and `output` tokens out cost, in micro-dollars (rounded).
    pub fn micro_usd(&self, input: u64, output: u64) -> u64 {
        // A dollar per million tokens is a micro-dollar per token.
        #[allow(
            clippy::cast_precision_loss,
            reason = "token counts far below 2^52 are exact"
        )]
        let cost = input as f64 * self.input_per_million + output as f64 * self.output_per_million;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "prices are checked non-negative; an absurd cost saturates"
        )]
        let micro = cost.round() as u64;
        micro
    }
}

/// The prices of models, by name: an exact name, a name ending in `*` for every model it starts
/// (`gpt-4o-mini*`), or `*` for any other. The longest match wins.
///
/// ```
/// use identity_budget::{Price, Prices};
/// let table = [
///     ("gpt-4o*".to_owned(), Price { input_per_million: 2.5, output_per_million: 10.0 }),
///     ("gpt-4o-mini*".to_owned(), Price { input_per_million: 0.15, output_per_million: 0.6 }),
/// ];
/// let prices = Prices::new(table.into_iter().collect()).map_err(|e| e[0].clone())?;
/// assert_eq!(prices.price_of("gpt-4o-mini-2024-07-18").unwrap().input_per_million, 0.15);
/// assert_eq!(prices.price_of("gpt-4o-2024-08-06").unwrap().input_per_million, 2.5);
/// assert!(prices.price_of("claude-sonnet").is_none());
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Prices {
    exact: BTreeMap<String, Price>,
    /// Prefixes, longest first.
    prefixes: Vec<(String, Price)>,
}

impl Prices {
    /// The table `prices`; every price must be a non-negative number.
    pub fn new(prices: BTreeMap<String, Price>) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut table = Self::default();
        for (model, price) in prices {
            for (field, value) in [
                ("input_per_million", price.input_per_million),
                ("output_per_million", price.output_per_million),
            ] {
                if !value.is_finite() || value < 0.0 {
                    errors.push(ConfigError::new(
                        format!("prices `{model}`"),
                        Some(field),
                        "must be a number of dollars, 0 or more",
                    ));
                }
            }
            match model.strip_suffix('*') {
                Some(prefix) if !prefix.contains('*') => {
                    table.prefixes.push((prefix.to_owned(), price));
                }
                None if !model.is_empty() && !model.contains('*') => {
                    table.exact.insert(model, price);
                }
                _ => errors.push(ConfigError::new(
                    format!("prices `{model}`"),
                    None,
                    "a model is a name, or a name ending in `*`",
                )),
            }
        }
        table
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        if errors.is_empty() {
            Ok(table)
        } else {
            Err(errors)
        }
    }

    /// The price of `model`, if the table has one.
    pub fn price_of(&self, model: &str) -> Option<Price> {
        self.exact.get(model).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| model.starts_with(prefix.as_str()))
                .map(|(_, price)| *price)
        })
    }

    /// True when the table has no price.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// The day of `at`, in days since 1970-01-01 (UTC), and the seconds left in it (at least 1).
pub(crate) fn day_of(at: OffsetDateTime) -> (i64, u64) {
    const DAY: i64 = 86_400;
    let seconds = at.unix_timestamp();
    let day = seconds.div_euclid(DAY);
    let left = DAY - seconds.rem_euclid(DAY);
    (day, u64::try_from(left).unwrap_or(1).max(1))
}

/// What the spend meters of one set of budgets share.
#[derive(Debug)]
pub(crate) struct SpendBook {
    pub(crate) counters: Arc<dyn Counters>,
    pub(crate) prices: Prices,
    pub(crate) notifier: Option<Arc<dyn BudgetNotifier>>,
    /// The (budget, key, day) told of their soft threshold.
    pub(crate) warned: Mutex<HashSet<(usize, String, i64)>>,
}

/// Adds what one call cost to the day's spend of one key under one budget.
#[derive(Debug)]
pub(crate) struct SpendMeter {
    pub(crate) book: Arc<SpendBook>,
    pub(crate) budget: usize,
    pub(crate) budget_id: String,
    pub(crate) key: String,
    /// The request's model, for an answer that does not name its own.
    pub(crate) model: String,
    pub(crate) max_micro_usd: u64,
    pub(crate) soft_micro_usd: u64,
    pub(crate) day: i64,
}

impl UsageMeter for SpendMeter {
    fn record(&self, usage: &Usage) {
        let model = usage.model.as_deref().unwrap_or(&self.model);
        let Some(price) = self
            .book
            .prices
            .price_of(model)
            .or_else(|| self.book.prices.price_of(&self.model))
        else {
            tracing::warn!(target: "agent_identity::audit", budget = %self.budget_id, model,
                "no price for this model: its usage is not counted against the budget");
            return;
        };
        let cost = price.micro_usd(usage.input_tokens, usage.output_tokens);
        let counted = Counted {
            book: self.book.clone(),
            budget: self.budget,
            budget_id: self.budget_id.clone(),
            key: self.key.clone(),
            model: model.to_owned(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            max_micro_usd: self.max_micro_usd,
            soft_micro_usd: self.soft_micro_usd,
            day: self.day,
        };
        // Counters in memory answer at once, so the spend is counted before the next call is
        // admitted; shared counters answer over the network, and the rest runs as a task.
        let mut adding = Box::pin(counted.add(cost));
        if futures::FutureExt::now_or_never(&mut adding).is_none() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(adding);
                }
                Err(_) => {
                    tracing::error!(target: "agent_identity::audit", budget = %self.budget_id,
                        key = %self.key, cost_micro_usd = cost,
                        "spend not counted: no runtime to count it on");
                }
            }
        }
    }
}

/// One call's cost on its way to the counters.
struct Counted {
    book: Arc<SpendBook>,
    budget: usize,
    budget_id: String,
    key: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    max_micro_usd: u64,
    soft_micro_usd: u64,
    day: i64,
}

impl Counted {
    async fn add(self, cost: u64) {
        let total = match self
            .book
            .counters
            .add_spend(self.budget, &self.key, self.day, cost)
            .await
        {
            Ok(total) => total,
            Err(err) => {
                tracing::error!(target: "agent_identity::audit", budget = %self.budget_id,
                    key = %self.key, cost_micro_usd = cost, error = %err, "spend not counted");
                return;
            }
        };
        let model = &self.model;
        tracing::info!(target: "agent_identity::audit", budget = %self.budget_id, key = %self.key,
            model, input_tokens = self.input_tokens, output_tokens = self.output_tokens,
            cost_micro_usd = cost, spent_micro_usd = total, "spend recorded");
        if total < self.soft_micro_usd {
            return;
        }
        let first = {
            let mut warned = self
                .book
                .warned
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Days gone by need no memory of who was told.
            warned.retain(|(_, _, day)| *day >= self.day);
            warned.insert((self.budget, self.key.clone(), self.day))
        };
        if first {
            #[allow(clippy::cast_precision_loss, reason = "dollars for people to read")]
            let (spent, max) = (total as f64 / 1e6, self.max_micro_usd as f64 / 1e6);
            tracing::warn!(target: "agent_identity::audit", budget = %self.budget_id,
                key = %self.key, spent_usd = spent, max_usd = max, "spend soft threshold reached");
            if let Some(notifier) = &self.book.notifier {
                notifier.spend_soft_limit_reached(&self.budget_id, &self.key, spent, max);
            }
        }
    }
}
