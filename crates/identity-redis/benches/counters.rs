//! What a budget's count costs in Redis, against a real Redis server (started here), with the
//! counts kept in memory as the baseline of the same run:
//!
//! - `take/memory`: `MemoryCounters::take` (this process, `governor`).
//! - `take/redis-script`: `RedisCounters::take`, one Lua script on the server.
//! - `take/redis-check-and-set`: `StateCounters::take` over `RedisState`: a read and a
//!   check-and-set, as budgets count over Vault; what the script saves.
//! - `take-8-at-once/*`: eight takes of one key at once, each batch.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_budget::{BudgetConfig, Counters, MemoryCounters, StateCounters};
use identity_redis::RedisConfig;
use identity_test_support::RedisServer;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(RedisServer::start());
    // An allowance that never runs out in a run.
    let budgets: [BudgetConfig; 1] = [serde_json::from_value(serde_json::json!(
        {"id": "per-user", "per": "user", "requests": 4_000_000_000u32, "window_secs": 1}))
    .unwrap()];
    let redis = RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap();
    let contenders: [(&str, Arc<dyn Counters>); 3] = [
        ("memory", Arc::new(MemoryCounters::new(&budgets).unwrap())),
        ("redis-script", Arc::new(redis.counters(&budgets))),
        (
            "redis-check-and-set",
            Arc::new(StateCounters::new(
                Arc::new(redis.state("budgets").unwrap()),
                &budgets,
            )),
        ),
    ];
    let mut group = c.benchmark_group("counters");
    for (name, counters) in &contenders {
        group.bench_function(format!("take/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(counters.take(0, "alice").await.unwrap()) });
        });
    }
    for (name, counters) in &contenders {
        group.bench_function(format!("take-8-at-once/{name}"), |b| {
            b.to_async(&runtime).iter(|| async {
                let takes = (0..8).map(|_| counters.take(0, "bob"));
                black_box(futures::future::join_all(takes).await)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
