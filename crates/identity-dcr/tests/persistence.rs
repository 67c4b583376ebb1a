//! The client stores' conformance suite, against each: memory and the sealed file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use identity_dcr::testing::run_client_persistence_conformance;
use identity_dcr::{FilePersistence, MemoryPersistence};
use identity_seal::Keyring;

#[tokio::test]
async fn memory_passes_the_suite() {
    run_client_persistence_conformance(&MemoryPersistence::default(), "memory").await;
}

#[tokio::test]
async fn the_sealed_file_passes_the_suite() {
    let dir = std::env::temp_dir().join(format!("identity-dcr-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("clients.json");
    let file = FilePersistence::open(&path, Keyring::new("k1", [4; 32]))
        .await
        .unwrap();
    run_client_persistence_conformance(&file, "file").await;
    drop(file);
    // What the suite left is read back by a new store on the same file.
    let reopened = FilePersistence::open(&path, Keyring::new("k1", [4; 32]))
        .await
        .unwrap();
    run_client_persistence_conformance(&reopened, "file-again").await;
    std::fs::remove_dir_all(&dir).unwrap();
}
