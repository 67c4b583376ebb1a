//! Property tests: the indexed router agrees with a naive scan of the priority-sorted rules.
//!
//! The naive scan here is written independently of the router (its own matcher, its own glob
//! matching by backtracking), so that it checks the router's compilation as well as its index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

mod common;

use common::*;
use identity_core::{
    CredentialStatus, MigrationPhase, OneOrMany, RequestContext, ResourceKind, RoutingRule,
};
use identity_router::{Matching, Router};
use proptest::prelude::*;
use proptest::sample::select;

const USERS: &[&str] = &["u0", "u1", "u2", "u3"];
const PROVIDERS: &[&str] = &["openai", "anthropic", "local"];
const ACTIONS: &[&str] = &["read", "write", "delete"];
const SPIFFE: &[&str] = &["spiffe://a/x", "spiffe://a/y"];
const RESOURCE_IDS: &[&str] = &["r0", "r1", "db-eu", "db-us", "x-prod", "db-eu-prod", "é-1"];
const RESOURCE_GLOBS: &[&str] = &[
    "r0",
    "db-*",
    "*-prod",
    "db-*-prod",
    "*",
    "r*1",
    "x*",
    "é*",
    "db-eu",
];
const MODELS: &[&str] = &["gpt-4o", "gpt-4", "o1", "claude-3", "m"];
const MODEL_GLOBS: &[&str] = &["gpt-4*", "gpt-4o", "*", "claude*", "*o", "o1"];
const REFS: &[&str] = &["a", "b", "missing"];

fn kinds() -> impl Strategy<Value = ResourceKind> {
    prop_oneof![Just(ResourceKind::Shared), Just(ResourceKind::Personal)]
}

fn phases() -> impl Strategy<Value = MigrationPhase> + Clone {
    select(MigrationPhase::ALL.to_vec())
}

fn one_or_many<T: Clone + std::fmt::Debug + 'static>(
    values: impl Strategy<Value = T> + Clone,
) -> impl Strategy<Value = OneOrMany<T>> {
    prop_oneof![
        values.clone().prop_map(OneOrMany::One),
        prop::collection::vec(values, 1..3).prop_map(OneOrMany::Many),
    ]
}

/// A rule without id and priority (the tests set those).
fn rule_body() -> impl Strategy<Value = RoutingRule> {
    (
        (
            prop::option::weighted(0.5, select(USERS)),
            prop::option::weighted(0.3, kinds()),
            prop::option::weighted(0.4, select(PROVIDERS)),
            prop::option::weighted(0.4, one_or_many(select(ACTIONS))),
        ),
        (
            prop::option::weighted(0.15, one_or_many(phases())),
            prop::option::weighted(0.15, select(SPIFFE)),
            prop::option::weighted(0.3, select(RESOURCE_GLOBS)),
            prop::option::weighted(0.3, select(MODEL_GLOBS)),
            select(REFS),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (user, kind, provider, action),
                (phase, spiffe, resource, model, credential_ref, read_only),
            )| {
                let mut rule = RoutingRule::new("", credential_ref).with_read_only(read_only);
                rule.match_user_id = user.map(str::to_owned);
                rule.match_resource_kind = kind;
                rule.match_provider = provider.map(str::to_owned);
                rule.match_action = action.map(|a| match a {
                    OneOrMany::One(a) => OneOrMany::One(a.to_owned()),
                    OneOrMany::Many(v) => {
                        OneOrMany::Many(v.into_iter().map(str::to_owned).collect())
                    }
                });
                rule.match_phase = phase;
                rule.match_spiffe_id = spiffe.map(str::to_owned);
                rule.match_resource_id = resource.map(str::to_owned);
                rule.match_model = model.map(str::to_owned);
                rule
            },
        )
}

fn rules(max: usize, priorities: std::ops::Range<i64>) -> impl Strategy<Value = Vec<RoutingRule>> {
    prop::collection::vec((rule_body(), priorities), 0..max).prop_map(|bodies| {
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, (mut rule, priority))| {
                rule.id = format!("r{i}");
                rule.priority = Some(priority);
                rule
            })
            .collect()
    })
}

fn context() -> impl Strategy<Value = RequestContext> {
    (
        (select(USERS), kinds(), select(PROVIDERS), select(ACTIONS)),
        (
            prop::option::of(phases()),
            prop::option::of(select(SPIFFE)),
            select(RESOURCE_IDS),
            select(MODELS),
        ),
    )
        .prop_map(
            |((user, kind, provider, action), (phase, spiffe, resource, model))| {
                let mut builder = ctx()
                    .user_id(user)
                    .resource_kind(kind)
                    .provider(provider)
                    .action(action)
                    .resource_id(resource)
                    .model(model);
                if let Some(phase) = phase {
                    builder = builder.phase(phase);
                }
                if let Some(spiffe) = spiffe {
                    builder = builder.spiffe_id(spiffe);
                }
                build(builder)
            },
        )
}

/// Glob matching by backtracking: a different algorithm from the router's.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

fn glob_str(pattern: &str, text: &str) -> bool {
    glob(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

fn naive_matches(rule: &RoutingRule, ctx: &RequestContext) -> bool {
    rule.match_user_id
        .as_ref()
        .is_none_or(|v| *v == ctx.user_id)
        && rule
            .match_resource_kind
            .is_none_or(|v| v == ctx.resource_kind)
        && rule
            .match_provider
            .as_ref()
            .is_none_or(|v| *v == ctx.provider)
        && rule
            .match_action
            .as_ref()
            .is_none_or(|v| v.as_slice().contains(&ctx.action))
        && rule
            .match_phase
            .as_ref()
            .is_none_or(|v| ctx.phase.is_some_and(|p| v.as_slice().contains(&p)))
        && rule
            .match_spiffe_id
            .as_ref()
            .is_none_or(|v| ctx.spiffe_id.as_ref() == Some(v))
        && rule
            .match_resource_id
            .as_ref()
            .is_none_or(|g| glob_str(g, &ctx.resource_id))
        && rule
            .match_model
            .as_ref()
            .is_none_or(|g| glob_str(g, &ctx.model))
}

/// The reference semantics: sort by priority (stable, higher first), take the first match.
fn naive_first(rules: &[RoutingRule], ctx: &RequestContext) -> Option<String> {
    let mut sorted: Vec<&RoutingRule> = rules.iter().collect();
    sorted.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
    sorted
        .into_iter()
        .find(|r| naive_matches(r, ctx))
        .map(|r| r.id.clone())
}

fn router(rules: Vec<RoutingRule>, matching: Matching, fall_through: bool) -> Router {
    let store = store_with([
        fixed("cred-a", "a"),
        fixed("cred-b", "b").with_status(CredentialStatus::Revoked),
    ]);
    Router::builder()
        .default_store(store)
        .rules(rules)
        .matching(matching)
        .fall_through(fall_through)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_index_agrees_with_a_naive_scan(
        rules in rules(60, 0..8),
        contexts in prop::collection::vec(context(), 1..16),
    ) {
        let indexed = router(rules.clone(), Matching::Indexed, false);
        let scan = router(rules.clone(), Matching::Scan, false);
        for ctx in &contexts {
            let want = naive_first(&rules, ctx);
            prop_assert_eq!(indexed.matching_rule(ctx).map(str::to_owned), want.clone());
            prop_assert_eq!(scan.matching_rule(ctx).map(str::to_owned), want);
        }
    }

    #[test]
    fn with_fall_through_the_index_agrees_with_the_scan(
        rules in rules(40, 0..4),
        contexts in prop::collection::vec(context(), 1..8),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let indexed = router(rules.clone(), Matching::Indexed, true);
        let scan = router(rules, Matching::Scan, true);
        for ctx in &contexts {
            let (a, b) = runtime.block_on(async { (indexed.resolve(ctx).await, scan.resolve(ctx).await) });
            match (a, b) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a.rule_id, b.rule_id),
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "indexed {:?} vs scan {:?}", a, b),
            }
        }
    }

    #[test]
    fn shuffling_rules_of_distinct_priorities_changes_nothing(
        (rules, shuffled) in rules(40, 0..1).prop_flat_map(|rules| {
            let distinct: Vec<RoutingRule> = rules
                .into_iter()
                .enumerate()
                .map(|(i, mut r)| { r.priority = Some(i as i64 * 7 % 41); r })
                .collect();
            (Just(distinct.clone()), Just(distinct).prop_shuffle())
        }),
        contexts in prop::collection::vec(context(), 1..16),
    ) {
        let original = router(rules, Matching::Indexed, false);
        let reordered = router(shuffled, Matching::Indexed, false);
        for ctx in &contexts {
            prop_assert_eq!(original.matching_rule(ctx), reordered.matching_rule(ctx));
        }
    }

    #[test]
    fn ties_go_to_the_rule_declared_first(
        rules in rules(40, 3..4),
        contexts in prop::collection::vec(context(), 1..16),
    ) {
        let router = router(rules.clone(), Matching::Indexed, false);
        for ctx in &contexts {
            let first_declared = rules.iter().find(|r| naive_matches(r, ctx)).map(|r| r.id.as_str());
            prop_assert_eq!(router.matching_rule(ctx), first_declared);
        }
    }
}
