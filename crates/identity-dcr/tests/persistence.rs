//! The client stores' conformance suite, against each: memory, the sealed file, and the shared
//! state in memory, in Vault (a real OpenBao started here) and in Redis (a real redis-server
//! started here).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_passes_the_suite() {
    use identity_core::Secret;
    use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
    use identity_vault::{VaultAuth, VaultCredentialStore};
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let vault =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap();
    let clients = identity_dcr::SharedClients::new(
        std::sync::Arc::new(vault.documents("clients").unwrap()),
        Keyring::new("k1", [4; 32]),
    );
    run_client_persistence_conformance(&clients, "vault").await;
    // What one replica saved, another (its own Vault client, the same key) reads.
    let second =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap();
    let other = identity_dcr::SharedClients::new(
        std::sync::Arc::new(second.documents("clients").unwrap()),
        Keyring::new("k1", [4; 32]),
    );
    let key = identity_dcr::ClientKey {
        issuer: "https://as.example.com".into(),
        profile: "crm".into(),
    };
    let client = identity_dcr::RegisteredClient::from_registration_answer(
        "https://as.example.com",
        serde_json::json!({"client_id": "shared", "client_secret": "s"}),
    )
    .unwrap();
    use identity_dcr::ClientPersistence;
    clients.save(&key, &client).await.unwrap();
    assert_eq!(other.load(&key).await.unwrap().unwrap().client_id, "shared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_passes_the_suite() {
    let server = identity_test_support::RedisServer::start().await;
    let redis = identity_redis::RedisConfig::new(server.url())
        .connect("redis", &|_| None)
        .unwrap();
    let clients = identity_dcr::SharedClients::new(
        std::sync::Arc::new(redis.state("clients").unwrap()),
        Keyring::new("k1", [4; 32]),
    );
    run_client_persistence_conformance(&clients, "redis").await;
}

#[tokio::test]
async fn shared_state_in_memory_passes_the_suite() {
    let clients = identity_dcr::SharedClients::new(
        std::sync::Arc::new(identity_state::MemoryState::default()),
        Keyring::new("k1", [4; 32]),
    );
    run_client_persistence_conformance(&clients, "shared-memory").await;
}
