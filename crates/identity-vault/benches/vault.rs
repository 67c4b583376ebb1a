//! Resolution cost with the Vault store, against a real OpenBao server (started here):
//!
//! - `resolve/cached`: a router resolution whose credential is in the store's read cache.
//! - `resolve/uncached`: the same resolution with the cache off: every one reads Vault.
//! - `bare_vaultrs_read`: `vaultrs::kv2::read` of the same entry with a plain vaultrs client, and
//!   nothing else: the floor an uncached resolution is compared with, in the same run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_cache::{CacheConfig, CachedStore};
use identity_core::{Credential, CredentialKind, CredentialWriter, RoutingRule, Secret};
use identity_router::Router;
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao, request_context};
use identity_vault::{VaultAuth, VaultCredentialStore};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

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
    let builder = |ttl: Duration| {
        let store = VaultCredentialStore::builder(
            bao.address(),
            VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)),
        )
        .mount("kv")
        .prefix("agents")
        .build()
        .unwrap();
        // The read cache is the wrapper any store takes; a zero TTL turns it off.
        CachedStore::new(store, CacheConfig::default().ttl(ttl)).unwrap()
    };
    let cached = builder(Duration::from_secs(3600));
    let uncached = builder(Duration::ZERO);
    runtime.block_on(async {
        let credential = Credential::new("cred-openai", CredentialKind::Fixed, "openai-prod")
            .unwrap()
            .with_scope("read")
            .with_secret(Secret::new("sk-bench"));
        cached.put(credential).await.unwrap();
    });
    let router = |store: CachedStore<VaultCredentialStore>| {
        Router::builder()
            .default_store(Arc::new(store))
            .rule(RoutingRule::new("openai", "openai-prod").with_priority(1))
            .build()
            .unwrap()
    };
    let (cached_router, uncached_router) = (router(cached), router(uncached));
    let ctx = request_context();

    // Check that both resolve before measuring (and warm the cache).
    for router in [&cached_router, &uncached_router] {
        assert!(runtime.block_on(router.resolve(&ctx)).is_ok());
    }
    let mut group = c.benchmark_group("vault");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("resolve/cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(cached_router.resolve(&ctx).await.is_ok()) })
    });
    group.bench_function("resolve/uncached", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(uncached_router.resolve(&ctx).await.is_ok()) })
    });
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(bao.address())
            .token(BAO_ROOT_TOKEN)
            .build()
            .unwrap(),
    )
    .unwrap();
    group.bench_function("bare_vaultrs_read", |b| {
        b.to_async(&runtime).iter(|| async {
            let entry: serde_json::Value = vaultrs::kv2::read(&client, "kv", "agents/openai-prod")
                .await
                .unwrap();
            black_box(entry["secret"].is_string())
        })
    });
    group.finish();
    drop(bao);
}

criterion_group!(benches, bench);
criterion_main!(benches);
