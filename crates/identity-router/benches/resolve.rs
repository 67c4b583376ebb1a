//! Resolution cost by rule count: the indexed router against the naive scan, in the same run.
//!
//! Rule sets of 10, 1,000 and 10,000 rules: 90% per-user rules (half of them also on a
//! provider), the rest on provider and action, action, resource kind and resource-id globs, and
//! one catch-all last. Contexts cycle through users with rules, users without (who land on a
//! glob, provider, action or kind rule) and requests only the catch-all takes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use identity_core::{
    Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret,
};
use identity_memory::MemoryCredentialStore;
use identity_router::{Matching, Router};

const PROVIDERS: [&str; 4] = ["openai", "anthropic", "gemini", "mistral"];
const ACTIONS: [&str; 4] = ["read", "write", "delete", "admin"];
const CREDENTIALS: usize = 16;

fn rule_set(n: usize) -> Vec<RoutingRule> {
    let per_user = n * 9 / 10;
    let mut rules = Vec::with_capacity(n);
    for i in 0..per_user {
        let mut rule = RoutingRule::new(format!("user-{i}"), format!("cred-{}", i % CREDENTIALS))
            .with_priority(100)
            .with_match_user_id(format!("user-{i}"));
        if i % 2 == 0 {
            rule = rule.with_match_provider(PROVIDERS[i % PROVIDERS.len()]);
        }
        rules.push(rule);
    }
    let rest = n - per_user - 1;
    for j in 0..rest {
        let credential = format!("cred-{}", j % CREDENTIALS);
        let rule = RoutingRule::new(format!("other-{j}"), credential);
        let rule = match j % 4 {
            0 => rule
                .with_priority(60)
                .with_match_provider(PROVIDERS[j % PROVIDERS.len()])
                .with_match_action([ACTIONS[(j / 4) % ACTIONS.len()]]),
            1 => rule
                .with_priority(50)
                .with_match_action([ACTIONS[(j / 4) % ACTIONS.len()], "list"]),
            2 => rule
                .with_priority(40)
                .with_match_resource_kind(if j % 8 == 2 {
                    ResourceKind::Personal
                } else {
                    ResourceKind::Shared
                }),
            _ => rule
                .with_priority(70)
                .with_match_resource_id(format!("proj-{j}-*")),
        };
        rules.push(rule);
    }
    rules.push(RoutingRule::new("catch-all", "cred-0").with_priority(0));
    rules
}

fn contexts(n: usize) -> Vec<RequestContext> {
    let per_user = (n * 9 / 10).max(1);
    (0..64)
        .map(|k| {
            let user = match k % 3 {
                0 => format!("user-{}", (k * 7919) % per_user),
                _ => format!("visitor-{k}"),
            };
            RequestContext::builder()
                .user_id(user)
                .resource_id(format!("proj-{}-data", (k * 4 + 3) % n.max(1)))
                .resource_kind(ResourceKind::Shared)
                .provider(PROVIDERS[k % PROVIDERS.len()])
                .model("gpt-4o")
                .action(if k % 5 == 0 {
                    "export"
                } else {
                    ACTIONS[k % ACTIONS.len()]
                })
                .trace_id(format!("trace-{k}"))
                .build()
                .unwrap()
        })
        .collect()
}

fn router(n: usize, matching: Matching) -> Router {
    let store = MemoryCredentialStore::from_credentials((0..CREDENTIALS).map(|c| {
        Credential::new(
            format!("id-{c}"),
            CredentialKind::Fixed,
            format!("cred-{c}"),
        )
        .unwrap()
        .with_scope("read")
        .with_secret(Secret::new(format!("secret-{c}")))
    }))
    .unwrap();
    Router::builder()
        .default_store(store)
        .rules(rule_set(n))
        .matching(matching)
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (group, full) in [("match", false), ("resolve", true)] {
        let mut g = c.benchmark_group(group);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(3));
        for n in [10, 1_000, 10_000] {
            let contexts = contexts(n);
            for (name, matching) in [("indexed", Matching::Indexed), ("scan", Matching::Scan)] {
                let router = router(n, matching);
                // Every context gets a credential: the figures are for grants.
                for ctx in &contexts {
                    assert!(runtime.block_on(router.resolve(ctx)).is_ok());
                }
                let mut i = 0;
                if full {
                    g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                        b.to_async(&runtime).iter(|| {
                            i = (i + 1) % contexts.len();
                            let ctx = &contexts[i];
                            let router = &router;
                            async move { black_box(router.resolve(ctx).await.is_ok()) }
                        })
                    });
                } else {
                    g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                        b.iter(|| {
                            i = (i + 1) % contexts.len();
                            black_box(router.matching_rule(&contexts[i]).is_some())
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
