//! `[[budgets]]`, `[prices]`, `budgets_redis` and `budgets_vault`: the budgets gate and where
//! it counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_identity::identity_budget::{
    BudgetConfig, Budgets, Counters, Price, Prices, StateCounters,
};
use agent_identity::{ConfigError, RoutingRule};

use crate::stores::shared::{Choice, SharedPlaces};

/// Where the file says budgets are counted: `budgets_redis`, `budgets_vault` (and
/// `budgets_vault_prefix`), or neither (this process's memory).
pub(crate) struct Place<'a> {
    pub(crate) redis: Option<&'a str>,
    pub(crate) vault: Option<&'a str>,
    pub(crate) vault_prefix: &'a str,
}

pub(crate) fn default_vault_prefix() -> String {
    "agent-identity-budgets".into()
}

/// The budgets gate, counted in memory, in the Redis server or over the Vault store `place`
/// names; `None` when no budget is configured or the configuration is wrong (the problems go
/// to `errors`).
pub(crate) fn budgets(
    configs: Vec<BudgetConfig>,
    prices: BTreeMap<String, Price>,
    place: &Place<'_>,
    places: &SharedPlaces,
    rules: &[RoutingRule],
    errors: &mut Vec<ConfigError>,
) -> Option<Budgets> {
    if configs.is_empty() {
        for (field, named) in [
            ("budgets_redis", place.redis),
            ("budgets_vault", place.vault),
        ] {
            if named.is_some() {
                errors.push(ConfigError::new(
                    field,
                    None,
                    "is set and no [[budgets]] are configured",
                ));
            }
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
    let built = match (place.redis, place.vault) {
        // In this process's memory: the counts go on across a reload that keeps the budgets.
        (None, None) => match places.retained.counters(&configs) {
            Ok(counters) => Budgets::with_counters(configs, counters),
            Err(err) => Err(vec![err]),
        },
        // Redis counts each with one script on the server.
        (Some(name), None) => {
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
        (_, Some(_)) => {
            let choice = Choice {
                vault: ("budgets_vault", place.vault),
                vault_prefix: ("budgets_vault_prefix", place.vault_prefix),
                redis: ("budgets_redis", place.redis),
                namespace: "budgets",
            };
            let state = match places.state("budgets", &choice) {
                Ok(Some(state)) => state,
                Ok(None) => return None,
                Err(err) => {
                    errors.push(err);
                    return None;
                }
            };
            let counters: Arc<dyn Counters> = Arc::new(StateCounters::new(state, &configs));
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
