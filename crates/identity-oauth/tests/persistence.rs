//! The connection stores' conformance suite, against each: memory, the sealed file, and Vault
//! (a real OpenBao started here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use identity_core::Secret;
use identity_oauth::testing::run_token_persistence_conformance;
use identity_oauth::{FileTokens, MemoryTokens};
use identity_seal::Keyring;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_passes_the_suite() {
    run_token_persistence_conformance(&MemoryTokens::default(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sealed_file_passes_the_suite() {
    let dir = std::env::temp_dir().join(format!("identity-oauth-suite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = FileTokens::open(dir.join("connections.json"), Keyring::new("k1", [3; 32]))
        .await
        .unwrap();
    run_token_persistence_conformance(&file, "file").await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "vault")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_passes_the_suite() {
    use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
    use identity_vault::{VaultAuth, VaultCredentialStore};
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let vault =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap();
    let tokens = identity_oauth::VaultTokens::new(
        vault.documents("connections").unwrap(),
        Keyring::new("k1", [9; 32]),
    );
    run_token_persistence_conformance(&tokens, "vault").await;
}
