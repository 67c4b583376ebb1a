//! What a budget costs a resolution: the same router with and without a per-user budget of
//! requests, and with a per-user budget of daily spend.
#![allow(clippy::unwrap_used, reason = "a bench setup that fails should stop")]

use criterion::{Criterion, criterion_group, criterion_main};
use identity_budget::{BudgetConfig, Budgets};
use identity_core::{
    Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_router::Router;

fn router(budgets: Option<Budgets>) -> Router {
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-openai", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk")),
    );
    let builder = Router::builder()
        .default_store(store)
        .rule(RoutingRule::new("openai", "openai").with_priority(1));
    match budgets {
        Some(budgets) => builder.gate(budgets).build().unwrap(),
        None => builder.build().unwrap(),
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let context = RequestContext::builder()
        .user_id("alice")
        .resource_id("r")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap();
    // An allowance that never runs out during the run: the check, not the refusal, is measured.
    let budget: BudgetConfig = serde_json::from_value(serde_json::json!(
        {"id": "per-user", "per": "user", "requests": 4_000_000_000u32, "window_secs": 1}))
    .unwrap();
    let spend: BudgetConfig = serde_json::from_value(serde_json::json!(
        {"id": "daily-spend", "per": "user", "max_daily_usd": 1_000_000.0}))
    .unwrap();
    let plain = router(None);
    let budgeted = router(Some(Budgets::new(vec![budget]).unwrap()));
    let spending = router(Some(Budgets::new(vec![spend]).unwrap()));
    let mut group = c.benchmark_group("budget");
    group.bench_function("resolve", |b| {
        b.to_async(&runtime)
            .iter(|| async { plain.resolve(&context).await.unwrap() });
    });
    group.bench_function("resolve with a per-user budget", |b| {
        b.to_async(&runtime)
            .iter(|| async { budgeted.resolve(&context).await.unwrap() });
    });
    // The check of the day's spend and the meter put on the resolution (no usage reported).
    group.bench_function("resolve with a per-user daily spend budget", |b| {
        b.to_async(&runtime)
            .iter(|| async { spending.resolve(&context).await.unwrap() });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
