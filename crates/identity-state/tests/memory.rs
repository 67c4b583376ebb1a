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
