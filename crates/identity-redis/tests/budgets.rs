//! Budgets counted in a real Redis, shared by three replicas' routers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test is a failed test"
)]
#![cfg(feature = "budget")]

use std::sync::Arc;

use identity_budget::{BudgetConfig, Budgets, Counters};
use identity_core::{
    Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_redis::RedisConfig;
use identity_router::{DenialReason, Router};
use identity_test_support::RedisServer;

fn budget(json: serde_json::Value) -> BudgetConfig {
    serde_json::from_value(json).unwrap()
}

fn replica(url: &str, budgets: &[BudgetConfig]) -> Router {
    let redis = RedisConfig::new(url).connect("redis", &|_| None).unwrap();
    let counters = Arc::new(redis.counters(budgets));
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-openai", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk")),
    );
    Router::builder()
        .default_store(store)
        .rule(RoutingRule::new("openai", "openai").with_priority(1))
        .gate(Budgets::with_counters(budgets.to_vec(), counters).unwrap())
        .build()
        .unwrap()
}

fn context(user: &str) -> RequestContext {
    RequestContext::builder()
        .user_id(user)
        .resource_id("r")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_fifty_across_three_replicas_grants_exactly_fifty() {
    let server = RedisServer::start().await;
    let budgets = [budget(serde_json::json!(
        {"id": "per-user", "per": "user", "requests": 50, "window_secs": 3600}))];
    let replicas: Vec<Router> = (0..3).map(|_| replica(&server.url(), &budgets)).collect();
    let alice = context("alice");
    let attempts = (0..150).map(|n| replicas[n % 3].resolve(&alice));
    let results = futures::future::join_all(attempts).await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 50);
    for denial in results.iter().filter_map(|r| r.as_ref().err()) {
        match &denial.reason {
            DenialReason::BudgetExhausted {
                budget,
                retry_after_secs,
            } => {
                assert_eq!(budget, "per-user");
                // One request refills every 72 s.
                assert!((1..=72).contains(retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Another user has an allowance of their own.
    assert!(replicas[1].resolve(&context("bob")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counters_pass_the_shared_conformance_suite() {
    let server = RedisServer::start().await;
    let url = server.url();
    // Each replica its own connection to the one server.
    let make = move |budgets: &[BudgetConfig]| -> Arc<dyn Counters> {
        let redis = RedisConfig::new(url.clone())
            .connect("redis", &|_| None)
            .unwrap();
        Arc::new(redis.counters(budgets))
    };
    identity_budget::testing::run_shared_counters_conformance(&make, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_is_one_sum_per_day_for_every_replica() {
    let server = RedisServer::start().await;
    let budgets = [budget(serde_json::json!(
        {"id": "spend", "per": "user", "max_daily_usd": 1.0}))];
    let one = RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap()
        .counters(&budgets);
    let two = RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap()
        .counters(&budgets);
    assert_eq!(one.add_spend(0, "alice", 20_000, 300).await.unwrap(), 300);
    assert_eq!(two.add_spend(0, "alice", 20_000, 200).await.unwrap(), 500);
    assert_eq!(one.spent(0, "alice", 20_000).await.unwrap(), 500);
    assert_eq!(two.spent(0, "alice", 20_001).await.unwrap(), 0);
    assert_eq!(two.spent(0, "bob", 20_000).await.unwrap(), 0);
    let ttl = server
        .command(&["TTL", &server_key(&server, "spend").await])
        .await
        .unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 172_800, "{ttl}");
}

async fn server_key(server: &RedisServer, kind: &str) -> String {
    let keys = server.command(&["KEYS", "*"]).await.unwrap();
    keys.lines()
        .find(|line| line.contains(&format!(":{kind}:")))
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_cannot_be_counted_refuses_the_call() {
    let mut server = RedisServer::start().await;
    let budgets = [budget(serde_json::json!(
        {"id": "per-user", "per": "user", "requests": 5, "window_secs": 60}))];
    let mut config = RedisConfig::new(server.url());
    config.timeout_ms = 300;
    let redis = config.connect("redis", &|_| None).unwrap();
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-openai", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk")),
    );
    let router = Router::builder()
        .default_store(store)
        .rule(RoutingRule::new("openai", "openai").with_priority(1))
        .gate(Budgets::with_counters(budgets.to_vec(), Arc::new(redis.counters(&budgets))).unwrap())
        .build()
        .unwrap();
    assert!(router.resolve(&context("alice")).await.is_ok());
    server.stop().await;
    let denial = router.resolve(&context("alice")).await.unwrap_err();
    assert!(
        matches!(
            &denial.reason,
            DenialReason::StoreUnavailable { store, retryable: true, .. } if store == "budget `per-user`"
        ),
        "{denial:?}"
    );
}
