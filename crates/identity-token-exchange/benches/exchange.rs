//! Token exchange cost, against the real authorization server (oidc-provider, started here):
//!
//! - `hit`: a resolution of a slot whose token is cached, through the store.
//! - `miss/store`: an exchange through the store (cache flushed before each): building the
//!   request, the call, reading the answer, caching.
//! - `miss/bare_reqwest`: the same form POSTed with reqwest to the same endpoint, the answer's
//!   bytes read and nothing else: the floor a miss is compared with, in the same run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_core::{
    CredentialRef, CredentialStore, RequestContext, ResourceKind, Secret, SubjectToken,
};
use identity_test_support::{AuthorizationServer, CLIENT_ID, CLIENT_SECRET, CRM, http_client};
use identity_token_exchange::{ExchangeConfig, TokenExchangeStore, TokenRequest};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(AuthorizationServer::start());
    let subject = runtime.block_on(server.subject_token("alice", "crm:read"));
    let config = ExchangeConfig::builder("crm-token", CLIENT_ID)
        .token_endpoint(server.token_endpoint())
        .allow_http_loopback(true)
        .client_secret(Secret::new(CLIENT_SECRET))
        .audience(CRM)
        .scopes(["crm:read"])
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        TokenExchangeStore::builder()
            .config(config.clone())
            .build()
            .unwrap()
    });
    let reference = CredentialRef::new("crm-token").unwrap();
    let ctx = RequestContext::builder()
        .user_id("alice")
        .resource_id("crm")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("gpt-4o")
        .action("read")
        .trace_id("t")
        .subject_token(SubjectToken::new(Secret::new(subject.clone())))
        .build()
        .unwrap();

    // Warm the cache and check that the exchange works before measuring.
    assert!(
        runtime
            .block_on(store.find_by_ref(&reference, &ctx))
            .unwrap()
            .is_some()
    );
    c.bench_function("token_exchange/hit", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(store.find_by_ref(&reference, &ctx).await.unwrap().is_some())
        })
    });

    let mut misses = c.benchmark_group("token_exchange/miss");
    misses.measurement_time(Duration::from_secs(5));
    misses.bench_function("store", |b| {
        b.to_async(&runtime).iter(|| async {
            store.flush();
            black_box(store.find_by_ref(&reference, &ctx).await.unwrap().is_some())
        })
    });
    let http = http_client();
    let request = TokenRequest::new(
        config.token_endpoint().unwrap(),
        &config,
        &Secret::new(subject.clone()),
        None,
    );
    let (url, body) = (
        request.url().clone(),
        request.form().encode().expose_secret().to_owned(),
    );
    misses.bench_function("bare_reqwest", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = http
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            black_box(response.bytes().await.unwrap().len())
        })
    });
    misses.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
