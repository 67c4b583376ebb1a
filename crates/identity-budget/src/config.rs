//! [`BudgetConfig`]: one budget as a configuration writes it, and what is checked of it.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use identity_core::ConfigError;
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// How much each may spend per day (UTC), in US dollars: the usage a model API reports in
    /// its answers through the proxy, priced from [`Prices`](crate::Prices) (the reference's
    /// `maxDailySpendUsd`).
    #[serde(alias = "maxDailySpendUsd")]
    pub max_daily_usd: Option<f64>,
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

/// The largest daily spend a budget may name, in dollars: its micro-dollars fit a `u64` with
/// room for any day's spend over it.
const MAX_DAILY_USD: f64 = 1e9;

impl BudgetConfig {
    /// The daily spend limit in micro-dollars, if any.
    pub(crate) fn max_daily_micro_usd(&self) -> Option<u64> {
        // In range: checked to lie in (0, 1e9] dollars.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a checked positive value below 1e15"
        )]
        self.max_daily_usd.map(|usd| (usd * 1e6).round() as u64)
    }

    /// The allowance of requests as a generic cell rate algorithm counts it: microseconds
    /// between two requests, and how many may be spent at once; `None` when the budget does
    /// not limit requests. Shared counters that run the algorithm elsewhere (a Redis script,
    /// a check-and-set over shared documents) take it from here.
    ///
    /// ```
    /// let budget: identity_budget::BudgetConfig = serde_json::from_value(serde_json::json!(
    ///     {"id": "b", "per": "user", "requests": 50, "window_secs": 3600}))?;
    /// assert_eq!(budget.request_rate(), Some((72e6, 50)));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn request_rate(&self) -> Option<(f64, u32)> {
        match (self.requests, self.window_secs) {
            (Some(requests), Some(window)) if requests > 0 && window > 0 => {
                #[allow(clippy::cast_precision_loss, reason = "microseconds, exact below 2^53")]
                let interval = window as f64 * 1e6 / f64::from(requests);
                Some((interval, requests))
            }
            _ => None,
        }
    }

    /// The budget's quota (`None` when it limits concurrency only), or what is wrong with it.
    pub(crate) fn quota(&self) -> Result<Option<Quota>, ConfigError> {
        let located = |field: &str, problem: &str| {
            ConfigError::new(format!("budget `{}`", self.id), Some(field), problem)
        };
        if self.soft_percent == 0 || self.soft_percent > 100 {
            return Err(located("soft_percent", "must be from 1 to 100"));
        }
        if self.concurrent == Some(0) {
            return Err(located("concurrent", "must be at least 1"));
        }
        if self
            .max_daily_usd
            .is_some_and(|usd| !usd.is_finite() || usd <= 0.0 || usd > MAX_DAILY_USD)
        {
            return Err(located(
                "max_daily_usd",
                "must be a number of dollars above 0 (and below a billion)",
            ));
        }
        let (requests, window_secs) = match (self.requests, self.window_secs) {
            (None, None) if self.concurrent.is_some() || self.max_daily_usd.is_some() => {
                return Ok(None);
            }
            (None, None) => {
                return Err(located(
                    "requests",
                    "is missing: a budget limits `requests` per `window_secs`, `concurrent` calls, `max_daily_usd`, or several",
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

/// Every problem of `configs`: a quota that cannot be, an id used twice.
pub(crate) fn check(configs: &[BudgetConfig]) -> Result<(), Vec<ConfigError>> {
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
