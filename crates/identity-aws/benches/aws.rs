//! Resolution cost with the AWS Secrets Manager store, against a real moto server (started here):
//!
//! - `resolve/cached`: a router resolution whose credential is in the store's read cache.
//! - `resolve/uncached`: the same resolution with the cache off: every one calls
//!   `GetSecretValue`.
//! - `bare_sdk_get_secret_value`: `GetSecretValue` of the same secret with a plain SDK client,
//!   the body's bytes read and nothing else: the floor an uncached resolution is compared with,
//!   in the same run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_aws::AwsSecretsManagerStore;
use identity_cache::{CacheConfig, CachedStore};
use identity_core::{Credential, CredentialKind, CredentialWriter, RoutingRule, Secret};
use identity_router::Router;
#[path = "../tests/common/mod.rs"]
mod common;

use identity_test_support::{
    MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, Moto, request_context,
};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let moto = runtime.block_on(Moto::start());
    let store = |ttl: Duration| {
        let store = AwsSecretsManagerStore::builder()
            .region(MOTO_REGION)
            .endpoint(moto.endpoint())
            .static_credentials(MOTO_ACCESS_KEY_ID, Secret::new(MOTO_SECRET_ACCESS_KEY))
            .prefix("agents/")
            .build()
            .unwrap();
        // The read cache is the wrapper any store takes; a zero TTL turns it off.
        CachedStore::new(store, CacheConfig::default().ttl(ttl)).unwrap()
    };
    let (cached, uncached) = (store(Duration::from_secs(3600)), store(Duration::ZERO));
    runtime.block_on(async {
        let credential = Credential::new("cred-openai", CredentialKind::Fixed, "openai-prod")
            .unwrap()
            .with_scope("read")
            .with_secret(Secret::new("sk-bench"));
        cached.put(credential).await.unwrap();
    });
    let router = |store: CachedStore<AwsSecretsManagerStore>| {
        Router::builder()
            .default_store(Arc::new(store))
            .rule(RoutingRule::new("openai", "openai-prod").with_priority(1))
            .build()
            .unwrap()
    };
    let (cached_router, uncached_router) = (router(cached), router(uncached));
    let ctx = request_context();
    for router in [&cached_router, &uncached_router] {
        assert!(runtime.block_on(router.resolve(&ctx)).is_ok());
    }

    let sdk = runtime.block_on(common::sdk(&moto));

    let mut group = c.benchmark_group("aws");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("resolve/cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(cached_router.resolve(&ctx).await.is_ok()) })
    });
    group.bench_function("resolve/uncached", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(uncached_router.resolve(&ctx).await.is_ok()) })
    });
    group.bench_function("bare_sdk_get_secret_value", |b| {
        b.to_async(&runtime).iter(|| async {
            let output = sdk
                .get_secret_value()
                .secret_id("agents/openai-prod")
                .send()
                .await
                .unwrap();
            black_box(output.secret_string().map(str::len))
        })
    });
    group.finish();
    drop(moto);
}

criterion_group!(benches, bench);
criterion_main!(benches);
