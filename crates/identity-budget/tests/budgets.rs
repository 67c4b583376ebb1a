//! Budgets as a router gate: exactly N of N+10 concurrent requests granted, the window refills,
//! the soft threshold notifies once, and budgets count only what they are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use identity_budget::{BudgetConfig, BudgetNotifier, Budgets};
use identity_core::{
    Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_router::{DenialReason, Router};

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

#[derive(Debug, Default, Clone)]
struct Told(Arc<Mutex<Vec<(String, String, u32)>>>);

impl BudgetNotifier for Told {
    fn soft_limit_reached(&self, budget: &str, key: &str, remaining: u32, _: u32) {
        self.0
            .lock()
            .unwrap()
            .push((budget.to_owned(), key.to_owned(), remaining));
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
            "budget `a`, field `requests`: is missing: a budget limits `requests` per `window_secs`, `concurrent` calls, or both",
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
