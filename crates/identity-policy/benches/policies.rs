//! What a permission check costs a resolution: the same router with and without a policy gate
//! over 100 policies (a permit per user and tool, forbids by workload and time, the one that
//! decides last in the file).
#![allow(clippy::unwrap_used, reason = "a bench setup that fails should stop")]

use std::fmt::Write as _;

use criterion::{Criterion, criterion_group, criterion_main};
use identity_core::{
    Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_policy::{Policies, PolicyGate, PolicySource};
use identity_router::Router;

/// 100 policies of the shapes a deployment writes; the request is permitted by the last.
fn hundred_policies() -> Policies {
    let mut text = String::new();
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for n in 0..users {
        writeln!(
            text,
            r#"@id("user-{n}") permit(principal == User::"user-{n}", action == Action::"resolve", resource == Credential::"cred-{n}");"#
        )
        .unwrap();
    }
    for n in 0..20 {
        writeln!(
            text,
            r#"@id("workload-{n}") forbid(principal in Workload::"spiffe://prod.example/rogue-{n}", action, resource);"#
        )
        .unwrap();
    }
    for n in 0..19 {
        writeln!(
            text,
            r#"@id("tool-{n}") permit(principal, action == Action::"call-tool", resource == Tool::"tool-{n}") when {{ context has risk && context.risk == "low" }};"#
        )
        .unwrap();
    }
    text.push_str(
        r#"@id("openai-in-office-hours") permit(principal, action == Action::"resolve", resource == Credential::"cred-openai") when { context.provider == "openai" && context.hour >= 0 };"#,
    );
    let policies = Policies::new(&[PolicySource::new("bench.cedar", text)], None).unwrap();
    assert_eq!(policies.len(), 100);
    policies
}

fn router(gate: Option<PolicyGate>) -> Router {
    let store = identity_memory::MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-openai", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_secret(Secret::new("sk")),
    );
    let builder = Router::builder().default_store(store).rule(
        RoutingRule::new("openai", "openai")
            .with_priority(1)
            .with_require_authorization(true),
    );
    match gate {
        Some(gate) => builder.gate(gate).build().unwrap(),
        None => builder.build().unwrap(),
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let context = RequestContext::builder()
        .user_id("alice")
        .resource_id("r")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("m")
        .action("read")
        .trace_id("t")
        .spiffe_id("spiffe://prod.example/agent")
        .build()
        .unwrap();
    let plain = router(None);
    let checked = router(Some(PolicyGate::new(hundred_policies())));
    let mut group = c.benchmark_group("policy");
    group.bench_function("resolve", |b| {
        b.to_async(&runtime)
            .iter(|| async { plain.resolve(&context).await.unwrap() });
    });
    group.bench_function("resolve with a check over 100 policies", |b| {
        b.to_async(&runtime)
            .iter(|| async { checked.resolve(&context).await.unwrap() });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
