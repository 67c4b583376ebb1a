//! The connection stores' conformance suite, against each: memory, the sealed file, and the
//! shared state in memory, in Vault (a real OpenBao started here) and in Redis (a real
//! redis-server started here).
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
    let tokens = identity_oauth::SharedTokens::new(
        std::sync::Arc::new(vault.documents("connections").unwrap()),
        Keyring::new("k1", [9; 32]),
    );
    run_token_persistence_conformance(&tokens, "vault").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_passes_the_suite() {
    let server = identity_test_support::RedisServer::start().await;
    let redis = identity_redis::RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap();
    let tokens = identity_oauth::SharedTokens::new(
        std::sync::Arc::new(redis.state("connections").unwrap()),
        Keyring::new("k1", [9; 32]),
    );
    run_token_persistence_conformance(&tokens, "redis").await;
    // What Redis holds names the user and provider, never a token.
    let everything = server.command(&["KEYS", "*"]).await.unwrap();
    assert!(everything.contains("connections/"), "{everything}");
    for key in everything.lines().filter(|l| l.contains(":d:")) {
        let raw = server.command(&["HGET", key, "d"]).await.unwrap();
        for token in ["gho-1", "alice-gh", "racer-", "-refresh", "canary-7d1f"] {
            assert!(!raw.contains(token), "{raw}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_state_in_memory_passes_the_suite() {
    let tokens = identity_oauth::SharedTokens::new(
        std::sync::Arc::new(identity_state::MemoryState::default()),
        Keyring::new("k1", [9; 32]),
    );
    run_token_persistence_conformance(&tokens, "shared-memory").await;
}
