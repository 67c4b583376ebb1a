//! `[[budgets]]`, `[prices]` and `budgets_redis`: the budgets gate and where it counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_identity::identity_budget::{BudgetConfig, Budgets, Counters, Price, Prices};
use agent_identity::{ConfigError, RoutingRule};

use crate::stores::shared::SharedPlaces;

/// The budgets gate, counted in memory or in the Redis server `redis` names; `None` when no
/// budget is configured or the configuration is wrong (the problems go to `errors`).
pub(crate) fn budgets(
    configs: Vec<BudgetConfig>,
    prices: BTreeMap<String, Price>,
    redis: Option<&str>,
    places: &SharedPlaces,
    rules: &[RoutingRule],
    errors: &mut Vec<ConfigError>,
) -> Option<Budgets> {
    if configs.is_empty() {
        if redis.is_some() {
            errors.push(ConfigError::new(
                "budgets_redis",
                None,
                "is set and no [[budgets]] are configured",
            ));
        }
        return None;
    }
    for budget in &configs {
        for rule in budget
            .rules
            .iter()
            .filter(|id| !rules.iter().any(|r| &r.id == *id))
        {
            errors.push(ConfigError::new(
                format!("budget `{}`", budget.id),
                Some("rules"),
                format!("names `{rule}`, which is no rule"),
            ));
        }
    }
    if prices.is_empty()
        && let Some(budget) = configs.iter().find(|b| b.max_daily_usd.is_some())
    {
        errors.push(ConfigError::new(
            format!("budget `{}`", budget.id),
            Some("max_daily_usd"),
            "needs a [prices] table to price the usage of calls with",
        ));
    }
    let prices = Prices::new(prices)
        .map_err(|more| errors.extend(more))
        .unwrap_or_default();
    let built = match redis {
        // In this process's memory: the counts go on across a reload that keeps the budgets.
        None => match places.retained.counters(&configs) {
            Ok(counters) => Budgets::with_counters(configs, counters),
            Err(err) => Err(vec![err]),
        },
        Some(name) => {
            let Some(server) = places.redis.get(name) else {
                errors.push(ConfigError::new(
                    "budgets_redis",
                    None,
                    format!("names no `[redis.{name}]` section"),
                ));
                return None;
            };
            let counters: Arc<dyn Counters> = Arc::new(server.counters(&configs));
            Budgets::with_counters(configs, counters)
        }
    };
    match built {
        Ok(budgets) => Some(budgets.with_prices(prices)),
        Err(more) => {
            errors.extend(more);
            None
        }
    }
}
