//! Resolution cost of a user's own token, the connection fresh (no refresh):
//!
//! - `resolve/memory_store`: the baseline, a `user-delegated` credential in a
//!   `MemoryCredentialStore`.
//! - `resolve/delegated_memory`: the user's connection in `MemoryTokens`.
//! - `resolve/delegated_file`: in `FileTokens` (held in memory, sealed: every read opens the
//!   AES-256-GCM seal).
//! - `resolve/delegated_vault`: in `SharedTokens` on a real OpenBao (started here): a KV read and
//!   an open per resolution, the shared state of several replicas.
//! - `resolve/delegated_shared_memory`: in `SharedTokens` on the process's `MemoryState` (a
//!   document read and an open, no network): what a reload-proof single replica does.
//! - `resolve/delegated_redis`: in `SharedTokens` on a real Redis (started here): an `HMGET` and
//!   an open per resolution.
//! - `bare_vaultrs_read`: the same KV entry read with vaultrs alone, the floor the Vault case is
//!   compared with in the same run; `bare_redis_hmget`: the same for Redis, with the redis crate
//!   alone.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_core::{
    Credential, CredentialKind, CredentialRef, OffsetDateTime, RoutingRule, Secret,
};
use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
use identity_memory::MemoryCredentialStore;
use identity_oauth::{
    DelegatedTokenStore, FileTokens, MemoryTokens, OAuthClient, Provider, SharedTokens,
    TokenPersistence, TokenSet,
};
use identity_router::Router;
use identity_seal::Keyring;
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao, request_context};
use identity_vault::{VaultAuth, VaultCredentialStore};

fn provider() -> Provider {
    let server = AuthorizationServerMetadata::from_json(
        serde_json::json!({"issuer": "https://as.example.com",
            "token_endpoint": "https://as.example.com/token"}),
        "https://as.example.com",
        &OutboundPolicy::default(),
    )
    .unwrap();
    Provider::with_client(
        "openai",
        OAuthClient::new(
            HttpClient::new(OutboundPolicy::default()).unwrap(),
            server,
            ClientCredentials::public("bench"),
        ),
    )
}

fn router_over(store: Arc<dyn identity_core::CredentialStore>) -> Router {
    Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("own", "user-openai")
                .with_credential_kind(CredentialKind::UserDelegated)
                .with_priority(1),
        )
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (bao, redis_server) = runtime.block_on(async {
        let bao = OpenBao::start().await;
        bao.enable_kv2("kv").await;
        (bao, identity_test_support::RedisServer::start().await)
    });
    let redis = identity_redis::RedisConfig::new(redis_server.url())
        .connect("redis", &|_| None)
        .unwrap();
    let slot = CredentialRef::new("user-openai").unwrap();
    let ring = Keyring::new("k1", [5; 32]);
    let tokens = TokenSet::bearer(
        Secret::new("user-token"),
        Some(OffsetDateTime::now_utc() + time::Duration::hours(6)),
    );
    let dir = std::env::temp_dir().join(format!("agent-identity-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vault =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap();
    let persistences: Vec<(&str, Arc<dyn TokenPersistence>)> = vec![
        ("delegated_memory", Arc::new(MemoryTokens::default())),
        (
            "delegated_file",
            Arc::new(
                runtime
                    .block_on(FileTokens::open(dir.join("connections.json"), ring.clone()))
                    .unwrap(),
            ),
        ),
        (
            "delegated_vault",
            Arc::new(SharedTokens::new(
                Arc::new(vault.documents("connections").unwrap()),
                ring.clone(),
            )),
        ),
        (
            "delegated_shared_memory",
            Arc::new(SharedTokens::new(
                Arc::new(identity_state::MemoryState::default()),
                ring.clone(),
            )),
        ),
        (
            "delegated_redis",
            Arc::new(SharedTokens::new(
                Arc::new(redis.state("connections").unwrap()),
                ring.clone(),
            )),
        ),
    ];
    let mut routers = Vec::new();
    for (name, persistence) in persistences {
        let store = DelegatedTokenStore::new(persistence).provider(slot.clone(), provider());
        runtime
            .block_on(store.connect("alice", "openai", &tokens))
            .unwrap();
        routers.push((name, router_over(Arc::new(store))));
    }
    let memory = MemoryCredentialStore::from_credentials(vec![
        Credential::new(
            "oauth:openai:alice",
            CredentialKind::UserDelegated,
            "user-openai",
        )
        .unwrap()
        .with_secret(Secret::new("user-token")),
    ])
    .unwrap();
    let baseline = router_over(Arc::new(memory));
    let ctx = request_context();
    assert!(runtime.block_on(baseline.resolve(&ctx)).is_ok());
    for (name, router) in &routers {
        assert!(runtime.block_on(router.resolve(&ctx)).is_ok(), "{name}");
    }
    let bare = vaultrs::client::VaultClient::new(
        vaultrs::client::VaultClientSettingsBuilder::default()
            .address(bao.address())
            .token(BAO_ROOT_TOKEN)
            .build()
            .unwrap(),
    )
    .unwrap();
    // base64url("alice") and base64url("openai"): where SharedTokens keeps the connection.
    let path = "connections/connections/YWxpY2U/b3BlbmFp";

    let mut group = c.benchmark_group("delegated");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("resolve/memory_store", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(baseline.resolve(&ctx).await.is_ok()) })
    });
    for (name, router) in &routers {
        group.bench_function(format!("resolve/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(router.resolve(&ctx).await.is_ok()) })
        });
    }
    group.bench_function("bare_vaultrs_read", |b| {
        b.to_async(&runtime).iter(|| async {
            let value: serde_json::Value = vaultrs::kv2::read(&bare, "kv", path).await.unwrap();
            black_box(value.is_object())
        })
    });
    let bare_redis = runtime.block_on(async {
        redis::Client::open(redis_server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });
    // Where SharedTokens keeps alice's connection in Redis.
    let key = "agent-identity:{connections}:d:connections/YWxpY2U/b3BlbmFp";
    group.bench_function("bare_redis_hmget", |b| {
        b.to_async(&runtime).iter(|| {
            let mut connection = bare_redis.clone();
            async move {
                let (version, document): (Option<u64>, Option<String>) = redis::cmd("HMGET")
                    .arg(key)
                    .arg("v")
                    .arg("d")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                black_box(version.is_some() && document.is_some())
            }
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
    drop(bao);
    drop(redis_server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
