//! The counters' conformance suite on the counters kept in memory: this process's own, and
//! a shared state held in memory (as replicas sharing Vault would hold it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;

use identity_budget::{BudgetConfig, Counters, MemoryCounters, StateCounters};
use identity_state::{MemoryState, SharedState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_counters_pass_the_conformance_suite() {
    let make = |budgets: &[BudgetConfig]| -> Arc<dyn Counters> {
        Arc::new(MemoryCounters::new(budgets).unwrap())
    };
    identity_budget::testing::run_counters_conformance(&make, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_over_a_shared_state_pass_the_shared_conformance_suite() {
    let state: Arc<dyn SharedState> = Arc::new(MemoryState::default());
    let make = move |budgets: &[BudgetConfig]| -> Arc<dyn Counters> {
        Arc::new(StateCounters::new(state.clone(), budgets))
    };
    identity_budget::testing::run_shared_counters_conformance(&make, "state").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_of_a_replica_that_died_lapses() {
    // A replica that dies holding a slot never gives it back: the call's entry says when it
    // lapses, and lapsed calls are not counted.
    let state: Arc<dyn SharedState> = Arc::new(MemoryState::default());
    let budget: BudgetConfig = serde_json::from_value(serde_json::json!(
        {"id": "one", "per": "user", "concurrent": 1}))
    .unwrap();
    let counters = StateCounters::new(state.clone(), &[budget]);
    let slot = counters.enter(0, "alice", 1).await.unwrap().unwrap();
    // The replica dies: its slot is never dropped.
    std::mem::forget(slot);
    assert!(counters.enter(0, "alice", 1).await.unwrap().is_none());
    let key = state.list("in-flight").await.unwrap().pop().unwrap();
    let (mut document, version) = state.read(&key).await.unwrap().unwrap();
    for lapses in document["calls"].as_object_mut().unwrap().values_mut() {
        *lapses = serde_json::json!(1);
    }
    state
        .write_if(&key, &document, Some(version))
        .await
        .unwrap()
        .unwrap();
    assert!(counters.enter(0, "alice", 1).await.unwrap().is_some());
}
