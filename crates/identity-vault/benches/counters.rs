//! What a budget's count costs over Vault, against a real OpenBao server (started here), with
//! the counts kept in memory as the baseline of the same run:
//!
//! - `take/memory`: `MemoryCounters::take` (this process, `governor`).
//! - `take/state-in-memory`: `StateCounters::take` over a `MemoryState`: the check-and-set's
//!   own cost, without a network.
//! - `take/vault`: `StateCounters::take` over `VaultDocuments`: a KV v2 read and a
//!   check-and-set write.
//! - `take-8-at-once/*`: eight takes of one key at once, each batch: the cost of contention
//!   (seven of eight lose a round and try again).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_budget::{BudgetConfig, Counters, MemoryCounters, StateCounters};
use identity_core::Secret;
use identity_state::MemoryState;
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
use identity_vault::{VaultAuth, VaultCredentialStore};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bao = runtime.block_on(async {
        let bao = OpenBao::start().await;
        bao.enable_kv2("kv").await;
        bao
    });
    // An allowance that never runs out in a run.
    let budgets: [BudgetConfig; 1] = [serde_json::from_value(serde_json::json!(
        {"id": "per-user", "per": "user", "requests": 4_000_000_000u32, "window_secs": 1}))
    .unwrap()];
    let documents =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap()
            .documents("agent-identity-budgets")
            .unwrap();
    let contenders: [(&str, Arc<dyn Counters>); 3] = [
        ("memory", Arc::new(MemoryCounters::new(&budgets).unwrap())),
        (
            "state-in-memory",
            Arc::new(StateCounters::new(
                Arc::new(MemoryState::default()),
                &budgets,
            )),
        ),
        (
            "vault",
            Arc::new(StateCounters::new(Arc::new(documents), &budgets)),
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
