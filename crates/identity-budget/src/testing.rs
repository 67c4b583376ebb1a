//! The conformance suite every [`Counters`] passes (feature `testing`): memory, a shared state
//! (memory, Vault) and Redis run it alike, so that a budget grants the same wherever it is
//! counted.
//!
//! ```
//! use std::sync::Arc;
//! use identity_budget::{BudgetConfig, Counters, MemoryCounters};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let make = |budgets: &[BudgetConfig]| -> Arc<dyn Counters> {
//!     Arc::new(MemoryCounters::new(budgets).unwrap())
//! };
//! identity_budget::testing::run_counters_conformance(&make, "memory").await;
//! # });
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a conformance suite fails by panicking, as a test does"
)]

use std::sync::Arc;
use std::time::Duration;

use crate::{BudgetConfig, Counters, Taken};

/// Makes counters for the budgets given, in their order.
pub type MakeCounters<'a> = &'a (dyn Fn(&[BudgetConfig]) -> Arc<dyn Counters> + Sync);

fn budget(id: String, json: serde_json::Value) -> BudgetConfig {
    let mut json = json;
    json["id"] = serde_json::Value::String(id);
    serde_json::from_value(json).expect("a budget of the suite")
}

/// Runs every check below on counters `make` builds; `run` (free text) goes into the budgets'
/// ids, keeping this run's counts apart from other runs sharing the backend.
pub async fn run_counters_conformance(make: MakeCounters<'_>, run: &str) {
    requests_are_granted_up_to_the_allowance(make, run).await;
    concurrent_requests_are_granted_exactly_the_allowance(make, run).await;
    the_allowance_refills_over_its_window(make, run).await;
    calls_in_flight_are_limited_and_given_back(make, run).await;
    concurrent_calls_enter_exactly_the_limit(make, run).await;
    spend_is_one_sum_per_day(make, run).await;
}

/// Runs [`run_counters_conformance`], then checks that two counters `make` builds (two
/// replicas) share one allowance, even when their budgets are listed in another order.
pub async fn run_shared_counters_conformance(make: MakeCounters<'_>, run: &str) {
    run_counters_conformance(make, run).await;
    replicas_share_one_allowance(make, run).await;
}

/// Requests are granted while the allowance lasts, each saying how many are left; the next is
/// refused with the wait until one fits. Keys and budgets count apart.
pub async fn requests_are_granted_up_to_the_allowance(make: MakeCounters<'_>, run: &str) {
    let budgets = [
        budget(
            format!("{run} three"),
            serde_json::json!({"per": "user", "requests": 3, "window_secs": 3600}),
        ),
        budget(
            format!("{run} other"),
            serde_json::json!({"per": "user", "requests": 1, "window_secs": 3600}),
        ),
        budget(
            format!("{run} calls only"),
            serde_json::json!({"per": "user", "concurrent": 1}),
        ),
    ];
    let counters = make(&budgets);
    for remaining in [2, 1, 0] {
        assert_eq!(
            counters.take(0, "alice").await.unwrap(),
            Taken::Granted { remaining }
        );
    }
    let Taken::Refused { retry_after } = counters.take(0, "alice").await.unwrap() else {
        panic!("a fourth request of three per hour was granted");
    };
    // One request refills every 20 minutes.
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1200),
        "{retry_after:?}"
    );
    assert_eq!(
        counters.take(0, "bob").await.unwrap(),
        Taken::Granted { remaining: 2 },
        "another key has an allowance of its own"
    );
    assert_eq!(
        counters.take(1, "alice").await.unwrap(),
        Taken::Granted { remaining: 0 },
        "another budget counts apart"
    );
    assert!(
        matches!(
            counters.take(2, "alice").await.unwrap(),
            Taken::Granted { .. }
        ),
        "a budget that does not limit requests grants them"
    );
}

/// Requests taken at once from many tasks are granted exactly the allowance.
pub async fn concurrent_requests_are_granted_exactly_the_allowance(
    make: MakeCounters<'_>,
    run: &str,
) {
    let budgets = [budget(
        format!("{run} ten"),
        serde_json::json!({"per": "user", "requests": 10, "window_secs": 3600}),
    )];
    let counters = make(&budgets);
    let takes = (0..25).map(|_| counters.take(0, "alice"));
    let granted = futures::future::join_all(takes)
        .await
        .into_iter()
        .filter(|taken| matches!(taken.as_ref().unwrap(), Taken::Granted { .. }))
        .count();
    assert_eq!(granted, 10);
}

/// A spent allowance fits one request again after the wait the refusal gave.
pub async fn the_allowance_refills_over_its_window(make: MakeCounters<'_>, run: &str) {
    let budgets = [budget(
        format!("{run} fast"),
        serde_json::json!({"per": "user", "requests": 2, "window_secs": 1}),
    )];
    let counters = make(&budgets);
    assert!(matches!(
        counters.take(0, "alice").await.unwrap(),
        Taken::Granted { .. }
    ));
    assert!(matches!(
        counters.take(0, "alice").await.unwrap(),
        Taken::Granted { .. }
    ));
    let Taken::Refused { retry_after } = counters.take(0, "alice").await.unwrap() else {
        panic!("a third request of two per second was granted");
    };
    assert!(retry_after <= Duration::from_millis(500), "{retry_after:?}");
    tokio::time::sleep(retry_after + Duration::from_millis(50)).await;
    assert!(matches!(
        counters.take(0, "alice").await.unwrap(),
        Taken::Granted { .. }
    ));
}

/// Enters another call of `key`, waiting for a slot given back (slots may go back as a task).
async fn enter_soon(counters: &dyn Counters, key: &str, limit: u32) -> bool {
    for _ in 0..100 {
        if counters.enter(0, key, limit).await.unwrap().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// No more calls than the limit are in flight at once; a dropped slot lets the next in.
pub async fn calls_in_flight_are_limited_and_given_back(make: MakeCounters<'_>, run: &str) {
    let budgets = [budget(
        format!("{run} parallel"),
        serde_json::json!({"per": "user", "concurrent": 3}),
    )];
    let counters = make(&budgets);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            counters
                .enter(0, "alice", 3)
                .await
                .unwrap()
                .expect("a free slot"),
        );
    }
    assert!(counters.enter(0, "alice", 3).await.unwrap().is_none());
    let bob = counters.enter(0, "bob", 3).await.unwrap();
    assert!(bob.is_some(), "another key's calls are its own");
    drop(held.pop());
    assert!(
        enter_soon(counters.as_ref(), "alice", 3).await,
        "a slot given back was not free again"
    );
}

/// Calls entered at once from many tasks get exactly the limit of slots.
pub async fn concurrent_calls_enter_exactly_the_limit(make: MakeCounters<'_>, run: &str) {
    let budgets = [budget(
        format!("{run} four"),
        serde_json::json!({"per": "user", "concurrent": 4}),
    )];
    let counters = make(&budgets);
    let entries = (0..12).map(|_| counters.enter(0, "alice", 4));
    let slots: Vec<_> = futures::future::join_all(entries)
        .await
        .into_iter()
        .filter_map(|slot| slot.unwrap())
        .collect();
    assert_eq!(slots.len(), 4);
}

/// Spend adds up per key and day; another day starts from nothing; adds made at once all count.
pub async fn spend_is_one_sum_per_day(make: MakeCounters<'_>, run: &str) {
    let budgets = [budget(
        format!("{run} spend"),
        serde_json::json!({"per": "user", "max_daily_usd": 1.0}),
    )];
    let counters = make(&budgets);
    let day = 20_000;
    assert_eq!(counters.spent(0, "alice", day).await.unwrap(), 0);
    assert_eq!(counters.add_spend(0, "alice", day, 100).await.unwrap(), 100);
    assert_eq!(counters.add_spend(0, "alice", day, 250).await.unwrap(), 350);
    assert_eq!(counters.spent(0, "alice", day).await.unwrap(), 350);
    assert_eq!(counters.spent(0, "bob", day).await.unwrap(), 0);
    let adds = (0..20).map(|_| counters.add_spend(0, "alice", day, 7));
    for total in futures::future::join_all(adds).await {
        total.unwrap();
    }
    assert_eq!(counters.spent(0, "alice", day).await.unwrap(), 490);
    assert_eq!(counters.add_spend(0, "alice", day + 1, 5).await.unwrap(), 5);
    assert_eq!(counters.spent(0, "alice", day + 1).await.unwrap(), 5);
}

/// Two replicas' counters, their budgets listed in another order, count one allowance, one
/// set of calls in flight and one spend.
pub async fn replicas_share_one_allowance(make: MakeCounters<'_>, run: &str) {
    let requests = budget(
        format!("{run} shared"),
        serde_json::json!({"per": "user", "requests": 4, "window_secs": 3600, "concurrent": 2, "max_daily_usd": 1.0}),
    );
    let filler = budget(
        format!("{run} filler"),
        serde_json::json!({"per": "user", "requests": 1, "window_secs": 3600}),
    );
    let one = make(&[requests.clone(), filler.clone()]);
    let other = make(&[filler, requests]);
    let takes = (0..10).map(|n| {
        let (counters, budget) = if n % 2 == 0 { (&one, 0) } else { (&other, 1) };
        counters.take(budget, "alice")
    });
    let granted = futures::future::join_all(takes)
        .await
        .into_iter()
        .filter(|taken| matches!(taken.as_ref().unwrap(), Taken::Granted { .. }))
        .count();
    assert_eq!(granted, 4, "two replicas granted more than one allowance");
    let first = one.enter(0, "alice", 2).await.unwrap();
    let second = other.enter(1, "alice", 2).await.unwrap();
    assert!(first.is_some() && second.is_some());
    assert!(one.enter(0, "alice", 2).await.unwrap().is_none());
    assert!(other.enter(1, "alice", 2).await.unwrap().is_none());
    assert_eq!(one.add_spend(0, "alice", 20_000, 40).await.unwrap(), 40);
    assert_eq!(other.add_spend(1, "alice", 20_000, 2).await.unwrap(), 42);
    assert_eq!(one.spent(0, "alice", 20_000).await.unwrap(), 42);
}
