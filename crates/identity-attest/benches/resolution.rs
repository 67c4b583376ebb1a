//! What a canary and an attestation add to a resolution, against a plain resolution in the same
//! run: one rule, a memory store, 64 users in turn.
//!
//! - `plain`: the rule alone.
//! - `canary`: the same rule with a 10% canary (the arm is a SHA-256 of the rule and the user).
//! - `canary-pick-alone`: that choice of arm without the resolution (`Router::arm_of`).
//! - `attested-eddsa`, `attested-es256`: the plain resolution, then its attestation signed.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_attest::Attestor;
use identity_core::{
    Canary, CanaryWeight, Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule,
    Secret,
};
use identity_memory::MemoryCredentialStore;
use identity_router::Router;
use identity_signing::{Algorithm, Signer, SigningKey};

fn router(canary: bool) -> Router {
    let store = MemoryCredentialStore::new();
    for (id, slot) in [("cred-v1", "openai-v1"), ("cred-v2", "openai-v2")] {
        store.insert(
            Credential::new(id, CredentialKind::Fixed, slot)
                .unwrap()
                .with_scope("read")
                .with_secret(Secret::new("sk-bench")),
        );
    }
    let mut rule = RoutingRule::new("llm", "openai-v1")
        .with_priority(1)
        .with_match_provider("openai");
    if canary {
        rule = rule.with_canary(Canary::new(
            "openai-v2",
            CanaryWeight::percent(10.0).unwrap(),
        ));
    }
    Router::builder()
        .default_store(store)
        .rule(rule)
        .build()
        .unwrap()
}

fn contexts() -> Vec<RequestContext> {
    (0..64)
        .map(|k| {
            RequestContext::builder()
                .user_id(format!("user-{k}"))
                .resource_id("docs")
                .resource_kind(ResourceKind::Shared)
                .provider("openai")
                .model("gpt-4o")
                .action("read")
                .trace_id(format!("trace-{k}"))
                .spiffe_id("spiffe://acme.test/agent")
                .build()
                .unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let contexts = contexts();
    let plain = router(false);
    let canary = router(true);
    let attestors = [
        ("attested-eddsa", Algorithm::EdDsa),
        ("attested-es256", Algorithm::Es256),
    ]
    .map(|(name, algorithm)| {
        let key = SigningKey::generate(algorithm, "bench").unwrap();
        (name, Attestor::new(Signer::new(key)))
    });
    let mut g = c.benchmark_group("resolution");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (name, router) in [("plain", &plain), ("canary", &canary)] {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                i = (i + 1) % contexts.len();
                let ctx = &contexts[i];
                async move { black_box(router.resolve(ctx).await.is_ok()) }
            })
        });
    }
    // The pick alone: the SHA-256 of the rule's id and the user, compared with the weight.
    let mut i = 0;
    g.bench_function("canary-pick-alone", |b| {
        b.iter(|| {
            i = (i + 1) % contexts.len();
            black_box(canary.arm_of("llm", &contexts[i]))
        })
    });
    for (name, attestor) in &attestors {
        let mut i = 0;
        g.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| {
                i = (i + 1) % contexts.len();
                let ctx = &contexts[i];
                let plain = &plain;
                async move {
                    let resolution = plain.resolve(ctx).await.unwrap();
                    black_box(attestor.attest(ctx, &resolution, Some("agent")).unwrap())
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
