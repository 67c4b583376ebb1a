//! The conformance suite against the in-process backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test is a failed test"
)]

#[tokio::test]
async fn memory_state_passes_the_conformance_suite() {
    let state = identity_state::MemoryState::default();
    identity_state::testing::run_shared_state_conformance(&state, "memory").await;
    // Two runs in one state stay apart by their namespace.
    identity_state::testing::run_shared_state_conformance(&state, "again").await;
}

#[tokio::test]
async fn a_namespace_passes_the_conformance_suite_and_keeps_apart() {
    use identity_state::{MemoryState, Namespaced, SharedState};
    let memory: std::sync::Arc<dyn SharedState> = std::sync::Arc::new(MemoryState::default());
    let one = Namespaced::new(memory.clone(), "one").unwrap();
    identity_state::testing::run_shared_state_conformance(&one, "suite").await;
    let two = Namespaced::new(memory.clone(), "two").unwrap();
    assert!(two.list("").await.unwrap().is_empty());
    assert_eq!(two.read("suite/cas/doc").await.unwrap(), None);
    // A lease in one namespace is not the other's.
    let ttl = std::time::Duration::from_secs(30);
    assert!(one.try_lease("l", "a", ttl).await.unwrap());
    assert!(two.try_lease("l", "b", ttl).await.unwrap());
}
