//! Budgets as a router gate: exactly N of N+10 concurrent requests granted, the window refills,
//! the soft threshold notifies once, budgets count only what they are for, and spend per day is
//! priced from reported usage.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_budget::{BudgetConfig, BudgetNotifier, Budgets, Price, Prices};
use identity_core::{
    Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_router::{DenialReason, Router, Usage};

fn budget(json: serde_json::Value) -> BudgetConfig {
    serde_json::from_value(json).unwrap()
}

fn router(budgets: Budgets) -> Router {
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-openai", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk")),
    );
    store.insert(
        Credential::new("cred-other", CredentialKind::Fixed, "other")
            .unwrap()
            .with_secret(Secret::new("sk-2")),
    );
    Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("openai", "openai")
                .with_priority(2)
                .with_match_provider("openai"),
        )
        .rule(RoutingRule::new("other", "other").with_priority(1))
        .gate(budgets)
        .build()
        .unwrap()
}

fn context(user: &str, provider: &str, workload: Option<&str>) -> RequestContext {
    let mut builder = RequestContext::builder()
        .user_id(user)
        .resource_id("r")
        .resource_kind(ResourceKind::Shared)
        .provider(provider)
        .model("m")
        .action("read")
        .trace_id("t");
    if let Some(workload) = workload {
        builder = builder.spiffe_id(workload);
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_n_plus_ten_concurrent_requests_exactly_n_are_granted() {
    const N: u32 = 50;
    let budgets = Budgets::new(vec![budget(
        serde_json::json!({"id": "per-user", "per": "user", "requests": N, "window_secs": 3600}),
    )])
    .unwrap();
    let router = Arc::new(router(budgets));
    let calls = (0..N + 10).map(|_| {
        let router = router.clone();
        tokio::spawn(async move { router.resolve(&context("alice", "openai", None)).await })
    });
    let outcomes = futures::future::join_all(calls).await;
    let granted = outcomes
        .iter()
        .filter(|outcome| outcome.as_ref().unwrap().is_ok())
        .count();
    assert_eq!(granted, N as usize);
    for outcome in outcomes {
        if let Err(denial) = outcome.unwrap() {
            assert_eq!(denial.rule_id.as_deref(), Some("openai"));
            let DenialReason::BudgetExhausted {
                budget,
                retry_after_secs,
            } = &denial.reason
            else {
                panic!("{denial:?}")
            };
            assert_eq!(budget, "per-user");
            // One request refills every 3600 / 50 = 72 s.
            assert!((1..=72).contains(retry_after_secs), "{retry_after_secs}");
        }
    }
    // Bob has an allowance of his own.
    assert!(
        router
            .resolve(&context("bob", "openai", None))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_window_refills() {
    // Two requests per second: one refills every 500 ms.
    let budgets = Budgets::new(vec![budget(
        serde_json::json!({"id": "b", "per": "rule", "requests": 2, "window_secs": 1}),
    )])
    .unwrap();
    let router = router(budgets);
    let alice = context("alice", "openai", None);
    assert!(router.resolve(&alice).await.is_ok());
    assert!(router.resolve(&alice).await.is_ok());
    let denial = router.resolve(&alice).await.unwrap_err();
    assert_eq!(denial.reason.code(), "budget_exhausted");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(router.resolve(&alice).await.is_ok());
    assert!(router.resolve(&alice).await.is_err());
}

/// What the notifier was told: requests' soft thresholds, and spend's.
#[derive(Debug, Default, Clone)]
#[allow(clippy::type_complexity, reason = "a test's record")]
struct Told(
    Arc<Mutex<Vec<(String, String, u32)>>>,
    Arc<Mutex<Vec<(String, String)>>>,
);

impl BudgetNotifier for Told {
    fn soft_limit_reached(&self, budget: &str, key: &str, remaining: u32, _: u32) {
        self.0
            .lock()
            .unwrap()
            .push((budget.to_owned(), key.to_owned(), remaining));
    }

    fn spend_soft_limit_reached(&self, budget: &str, key: &str, _: f64, _: f64) {
        self.1
            .lock()
            .unwrap()
            .push((budget.to_owned(), key.to_owned()));
    }
}

#[tokio::test]
async fn the_soft_threshold_notifies_once() {
    let told = Told::default();
    let budgets = Budgets::new(vec![budget(
        serde_json::json!({"id": "b", "per": "user", "requests": 10, "window_secs": 3600}),
    )])
    .unwrap()
    .notifier(told.clone());
    let router = router(budgets);
    for _ in 0..7 {
        assert!(
            router
                .resolve(&context("alice", "openai", None))
                .await
                .is_ok()
        );
    }
    assert!(told.0.lock().unwrap().is_empty());
    // The eighth request spends 80%.
    for _ in 0..3 {
        assert!(
            router
                .resolve(&context("alice", "openai", None))
                .await
                .is_ok()
        );
    }
    assert_eq!(
        *told.0.lock().unwrap(),
        [("b".to_owned(), "alice".to_owned(), 2)]
    );
    assert!(
        router
            .resolve(&context("alice", "openai", None))
            .await
            .is_err()
    );
    assert_eq!(told.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn budgets_count_only_their_rules_and_requests_with_their_key() {
    let budgets = Budgets::new(vec![
        budget(
            serde_json::json!({"id": "openai-only", "per": "credential", "requests": 1,
                                  "window_secs": 3600, "rules": ["openai"]}),
        ),
        budget(
            serde_json::json!({"id": "agents", "per": "workload", "requests": 1,
                                  "window_secs": 3600}),
        ),
    ])
    .unwrap();
    let router = router(budgets);
    // The other rule is not counted by `openai-only`; a request naming no workload is not
    // counted by `agents`.
    for _ in 0..3 {
        assert!(
            router
                .resolve(&context("alice", "mistral", None))
                .await
                .is_ok()
        );
    }
    assert!(
        router
            .resolve(&context("alice", "openai", None))
            .await
            .is_ok()
    );
    let denial = router
        .resolve(&context("bob", "openai", None))
        .await
        .unwrap_err();
    assert!(denial.to_string().contains("openai-only"), "{denial}");
    let agent = context("alice", "mistral", Some("spiffe://prod/agent"));
    assert!(router.resolve(&agent).await.is_ok());
    let denial = router.resolve(&agent).await.unwrap_err();
    assert!(denial.to_string().contains("agents"), "{denial}");
    assert!(
        router
            .resolve(&context("alice", "mistral", Some("spiffe://prod/other")))
            .await
            .is_ok()
    );
}

#[test]
fn budget_mistakes_are_named() {
    let errors = Budgets::new(vec![
        budget(serde_json::json!({"id": "a", "per": "user", "requests": 0, "window_secs": 60})),
        budget(serde_json::json!({"id": "b", "per": "user", "requests": 1, "window_secs": 0})),
        budget(
            serde_json::json!({"id": "c", "per": "user", "requests": 1, "window_secs": 1,
                                  "soft_percent": 0}),
        ),
    ])
    .unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "budget `a`, field `requests`: must be at least 1",
            "budget `b`, field `window_secs`: must be at least 1",
            "budget `c`, field `soft_percent`: must be from 1 to 100",
        ]
    );
    let twice =
        budget(serde_json::json!({"id": "a", "per": "user", "requests": 1, "window_secs": 1}));
    let errors = Budgets::new(vec![twice.clone(), twice]).unwrap_err();
    assert!(errors[0].to_string().contains("is used by another budget"));
    assert!(
        serde_json::from_value::<BudgetConfig>(serde_json::json!(
            {"id": "a", "per": "team", "requests": 1, "window_secs": 1}))
        .is_err()
    );
}

#[tokio::test]
async fn a_concurrency_slot_is_held_as_long_as_the_resolution() {
    let budgets = Budgets::new(vec![budget(
        serde_json::json!({"id": "one-at-a-time", "per": "user", "concurrent": 1}),
    )])
    .unwrap();
    let router = router(budgets);
    let alice = context("alice", "openai", None);
    let first = router.resolve(&alice).await.unwrap();
    let held = first.clone();
    drop(first);
    // A clone still holds the slot.
    let denial = router.resolve(&alice).await.unwrap_err();
    assert_eq!(
        denial.reason,
        DenialReason::BudgetExhausted {
            budget: "one-at-a-time".into(),
            retry_after_secs: 1
        }
    );
    // Another user has a slot of their own.
    assert!(
        router
            .resolve(&context("bob", "openai", None))
            .await
            .is_ok()
    );
    drop(held);
    assert!(router.resolve(&alice).await.is_ok());
}

#[test]
fn a_budget_limits_a_rate_concurrency_or_both() {
    for (json, problem) in [
        (
            serde_json::json!({"id": "a", "per": "user"}),
            "budget `a`, field `requests`: is missing: a budget limits `requests` per `window_secs`, `concurrent` calls, `max_daily_usd`, or several",
        ),
        (
            serde_json::json!({"id": "a", "per": "user", "requests": 5}),
            "budget `a`, field `window_secs`: is missing",
        ),
        (
            serde_json::json!({"id": "a", "per": "user", "concurrent": 0}),
            "budget `a`, field `concurrent`: must be at least 1",
        ),
    ] {
        let errors = Budgets::new(vec![budget(json)]).unwrap_err();
        assert_eq!(errors[0].to_string(), problem);
    }
}

thread_local! {
    /// How many days this test's clock runs ahead.
    static DAYS_AHEAD: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

fn clock() -> identity_core::OffsetDateTime {
    identity_core::OffsetDateTime::now_utc()
        + time::Duration::days(DAYS_AHEAD.with(std::cell::Cell::get))
}

fn priced() -> Prices {
    let table = [(
        "gpt-4o*".to_owned(),
        Price {
            input_per_million: 2.5,
            output_per_million: 10.0,
        },
    )];
    Prices::new(table.into_iter().collect()).unwrap()
}

#[tokio::test]
async fn spend_per_day_is_priced_from_usage_and_refuses_until_midnight() {
    DAYS_AHEAD.with(|days| days.set(0));
    let told = Told::default();
    let budgets = Budgets::new(vec![budget(
        serde_json::json!({"id": "spend", "per": "user", "max_daily_usd": 0.01, "soft_percent": 50}),
    )])
    .unwrap()
    .with_prices(priced())
    .with_clock(clock)
    .notifier(told.clone());
    assert!(budgets.limits_spend());
    let router = router(budgets);
    let alice = context("alice", "openai", None);
    // $0.0045 a call: 1,000 tokens in at $2.50, 200 out at $10.00, per million.
    let usage = Usage::new(Some("gpt-4o-2024-08-06".into()), 1000, 200);
    for _ in 0..3 {
        let granted = router.resolve(&alice).await.unwrap();
        assert!(granted.is_metered());
        granted.report_usage(&usage);
    }
    // $0.0135 spent: refused, until midnight UTC.
    let denial = router.resolve(&alice).await.unwrap_err();
    match denial.reason {
        DenialReason::BudgetExhausted {
            budget,
            retry_after_secs,
        } => {
            assert_eq!(budget, "spend");
            assert!(
                (1..=86_400).contains(&retry_after_secs),
                "{retry_after_secs}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The soft threshold ($0.005) was crossed once: told once.
    assert_eq!(told.1.lock().unwrap().len(), 1);
    // A model without a price is not counted; another user has their own day.
    let bob = context("bob", "openai", None);
    let granted = router.resolve(&bob).await.unwrap();
    granted.report_usage(&Usage::new(
        Some("claude-sonnet".into()),
        1_000_000,
        1_000_000,
    ));
    assert!(router.resolve(&bob).await.is_ok());
    // The next day starts afresh.
    DAYS_AHEAD.with(|days| days.set(1));
    assert!(router.resolve(&alice).await.is_ok());
    DAYS_AHEAD.with(|days| days.set(0));
}

#[test]
fn spend_mistakes_are_named() {
    for (json, field) in [
        (
            serde_json::json!({"id": "s", "per": "user", "max_daily_usd": 0}),
            "max_daily_usd",
        ),
        (
            serde_json::json!({"id": "s", "per": "user", "max_daily_usd": -1.5}),
            "max_daily_usd",
        ),
    ] {
        let err = Budgets::new(vec![budget(json)]).unwrap_err();
        assert_eq!(err[0].field.as_deref(), Some(field), "{err:?}");
    }
    let bad = [
        (
            "gpt-*-mini".to_owned(),
            Price {
                input_per_million: 1.0,
                output_per_million: 1.0,
            },
        ),
        (
            "free".to_owned(),
            Price {
                input_per_million: -1.0,
                output_per_million: 0.0,
            },
        ),
    ];
    let err = Prices::new(bad.into_iter().collect()).unwrap_err();
    assert_eq!(err.len(), 2, "{err:?}");
}
