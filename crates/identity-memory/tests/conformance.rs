//! The store conformance suite, against the concrete store and behind `Arc<dyn CredentialStore>`.
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use std::sync::Arc;
use std::time::Duration;

use identity_core::testing::run_conformance;
use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter, Error,
};
use identity_memory::MemoryCredentialStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concrete_store_passes_the_suite() {
    let store = MemoryCredentialStore::new();
    run_conformance(&store, "concrete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arc_dyn_store_passes_the_suite() {
    let store: Arc<dyn CredentialWriter> = Arc::new(MemoryCredentialStore::new());
    run_conformance(&store, "arc-dyn").await;
    // The same value also serves as a plain `Arc<dyn CredentialStore>`.
    let as_store: Arc<dyn CredentialStore> = store;
    assert_eq!(as_store.backend(), "memory");
}

#[test]
fn duplicate_refs_are_a_configuration_error_naming_both() {
    let a = Credential::new("cred-a", CredentialKind::Fixed, "slot").unwrap();
    let b = Credential::new("cred-b", CredentialKind::Fixed, "slot").unwrap();
    let err = MemoryCredentialStore::from_credentials([a, b])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cred-a") && err.contains("cred-b") && err.contains("ref"),
        "{err}"
    );
}

#[tokio::test]
async fn lease_arguments_are_checked() {
    let store = MemoryCredentialStore::new();
    let r = CredentialRef::new("slot").unwrap();
    let zero = store.reserve(&r, "m1", Duration::ZERO).await;
    assert!(matches!(
        zero,
        Err(Error::InvalidArgument {
            argument: "lease ttl",
            ..
        })
    ));
    let empty = store.reserve(&r, " ", Duration::from_secs(1)).await;
    assert!(matches!(
        empty,
        Err(Error::InvalidArgument {
            argument: "migration id",
            ..
        })
    ));
}
