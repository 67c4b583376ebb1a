//! Canaries: a steady share of users on the canary credential, each user always on one arm,
//! fall-back only when the rule says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

mod common;

use common::*;
use identity_core::{
    Canary, CanaryWeight, CredentialStatus, RequestContext, RoutingRule, StickTo, parse_rules_json,
};
use identity_router::{Arm, DenialReason, ExplainedOutcome, Router};

fn canary_router(canary: Canary, with_canary_credential: bool) -> Router {
    let mut credentials = vec![fixed("cred-v1", "openai-v1")];
    if with_canary_credential {
        credentials.push(fixed("cred-v2", "openai-v2"));
    }
    Router::builder()
        .default_store(store_with(credentials))
        .rule(
            RoutingRule::new("llm", "openai-v1")
                .with_priority(1)
                .with_canary(canary),
        )
        .build()
        .unwrap()
}

fn ten_percent() -> Canary {
    Canary::new("openai-v2", CanaryWeight::percent(10.0).unwrap())
}

fn user(n: usize) -> RequestContext {
    build(ctx().user_id(format!("user-{n:05}")))
}

#[tokio::test]
async fn ten_thousand_users_at_ten_percent_land_within_bounds_each_always_on_one_arm() {
    let router = canary_router(ten_percent(), true);
    let mut on_canary = 0;
    for n in 0..10_000 {
        let ctx = user(n);
        let first = router.resolve(&ctx).await.unwrap();
        let again = router.resolve(&ctx).await.unwrap();
        assert_eq!(first.arm, again.arm, "user {n} changed arms");
        assert_eq!(first.credential_id, again.credential_id);
        match first.arm {
            Arm::Canary => {
                assert_eq!(first.credential_id, "cred-v2");
                on_canary += 1;
            }
            _ => assert_eq!(first.credential_id, "cred-v1"),
        }
    }
    // Binomial(10 000, 0.1): mean 1 000, standard deviation 30. Five deviations either side.
    assert!(
        (850..=1150).contains(&on_canary),
        "{on_canary} on the canary"
    );
}

#[tokio::test]
async fn the_arm_is_the_same_on_another_router_and_the_weights_bound_it() {
    // Another router (a replica, a restart) puts each user on the same arm.
    let a = canary_router(ten_percent(), true);
    let b = canary_router(ten_percent(), true);
    for n in 0..500 {
        let ctx = user(n);
        assert_eq!(
            a.resolve(&ctx).await.unwrap().arm,
            b.resolve(&ctx).await.unwrap().arm
        );
    }
    let none = canary_router(
        Canary::new("openai-v2", CanaryWeight::percent(0.0).unwrap()),
        true,
    );
    let all = canary_router(
        Canary::new("openai-v2", CanaryWeight::percent(100.0).unwrap()),
        true,
    );
    for n in 0..200 {
        assert_eq!(none.resolve(&user(n)).await.unwrap().arm, Arm::Primary);
        assert_eq!(all.resolve(&user(n)).await.unwrap().arm, Arm::Canary);
    }
}

#[tokio::test]
async fn two_rules_put_different_users_on_their_canaries() {
    // The rule's id is in the hash: the same 10% of users are not every rule's guinea pigs.
    let router = Router::builder()
        .default_store(store_with([
            fixed("cred-v1", "openai-v1"),
            fixed("cred-v2", "openai-v2"),
        ]))
        .rule(
            RoutingRule::new("reads", "openai-v1")
                .with_priority(1)
                .with_match_action(["read"])
                .with_canary(ten_percent()),
        )
        .rule(
            RoutingRule::new("writes", "openai-v1")
                .with_priority(1)
                .with_match_action(["write"])
                .with_canary(ten_percent()),
        )
        .build()
        .unwrap();
    let mut differ = 0;
    for n in 0..1_000 {
        let read = router.resolve(&user(n)).await.unwrap();
        let write_ctx = build(ctx().user_id(format!("user-{n:05}")).action("write"));
        let write = router.resolve(&write_ctx).await.unwrap();
        differ += usize::from(read.arm != write.arm);
    }
    // Independent arms differ for about 18% of users (2 × 0.1 × 0.9).
    assert!(differ > 100, "only {differ} users differ between the rules");
}

#[tokio::test]
async fn a_workload_canary_sticks_by_the_workload_and_by_the_user_without_one() {
    let router = canary_router(ten_percent().with_stick_to(StickTo::Workload), true);
    // Find a workload on the canary; every user of it is then on the canary.
    let mut workload = None;
    for n in 0..200 {
        let spiffe = format!("spiffe://acme.test/agent-{n}");
        let ctx = build(ctx().spiffe_id(spiffe.clone()));
        if router.resolve(&ctx).await.unwrap().arm == Arm::Canary {
            workload = Some(spiffe);
            break;
        }
    }
    let workload = workload.expect("one of 200 workloads is on a 10% canary");
    for n in 0..100 {
        let ctx = build(
            ctx()
                .user_id(format!("user-{n}"))
                .spiffe_id(workload.clone()),
        );
        assert_eq!(router.resolve(&ctx).await.unwrap().arm, Arm::Canary);
    }
    // Without a workload, users spread as in a user canary.
    let mut on_canary = 0;
    for n in 0..2_000 {
        on_canary += usize::from(router.resolve(&user(n)).await.unwrap().arm == Arm::Canary);
    }
    assert!((110..=290).contains(&on_canary), "{on_canary} of 2000");
}

async fn a_canary_user(router: &Router) -> RequestContext {
    for n in 0..1_000 {
        let ctx = user(n);
        if let Err(denial) = router.resolve(&ctx).await
            && denial.arm == Arm::Canary
        {
            return ctx;
        }
    }
    panic!("no user of 1000 is on a 10% canary");
}

#[tokio::test]
async fn a_missing_canary_refuses_its_users_unless_the_rule_falls_back() {
    let strict = canary_router(ten_percent(), false);
    let ctx = a_canary_user(&strict).await;
    let denial = strict.resolve(&ctx).await.unwrap_err();
    assert!(matches!(
        denial.reason,
        DenialReason::CredentialNotFound { .. }
    ));
    assert_eq!(denial.arm, Arm::Canary);
    assert_eq!(&*denial.rule_id.unwrap(), "llm");
    // The users on the primary arm are served meanwhile.
    assert!(strict.resolve(&user(0)).await.is_ok() || strict.resolve(&user(1)).await.is_ok());

    let lenient = canary_router(ten_percent().with_fall_back(true), false);
    let resolution = lenient.resolve(&ctx).await.unwrap();
    assert_eq!(resolution.arm, Arm::Primary);
    assert_eq!(resolution.credential_id, "cred-v1");
    assert!(
        resolution.notes()[0].contains("credential_not_found"),
        "{:?}",
        resolution.notes()
    );
    let explanation = lenient.explain(&ctx).await;
    assert!(matches!(
        explanation.outcome,
        ExplainedOutcome::Granted { arm: Arm::Primary, ref notes, .. } if !notes.is_empty()
    ));
}

#[tokio::test]
async fn a_refused_canary_falls_back_and_a_refused_primary_is_not_rescued_by_it() {
    let router = Router::builder()
        .default_store(store_with([
            fixed("cred-v1", "openai-v1").with_status(CredentialStatus::Revoked),
            fixed("cred-v2", "openai-v2").with_status(CredentialStatus::Revoked),
        ]))
        .rule(
            RoutingRule::new("llm", "openai-v1")
                .with_priority(1)
                .with_canary(ten_percent().with_fall_back(true)),
        )
        .build()
        .unwrap();
    // On the canary arm: canary revoked, primary revoked too: the primary's refusal stands.
    for n in 0..300 {
        let denial = router.resolve(&user(n)).await.unwrap_err();
        assert_eq!(denial.arm, Arm::Primary);
        assert_eq!(denial.reason.code(), "credential_not_active");
    }
}

#[test]
fn canaries_are_checked_when_the_router_is_built() {
    let rules = parse_rules_json(
        r#"[
        {"id":"same","credentialRef":"a","priority":1,"canary":{"credentialRef":"a","weight":5}},
        {"id":"nowhere","credentialRef":"a","priority":1,"canary":{"credentialRef":"b","weight":5,"store":"vault"}},
        {"id":"empty","credentialRef":"a","priority":1,"canary":{"credentialRef":"","weight":5}}
    ]"#,
    )
    .unwrap();
    let err = Router::builder()
        .default_store(store_with([]))
        .rules(rules)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rule `same`, field `canary.credentialRef`: names the rule's own"),
        "{err}"
    );
    assert!(
        err.contains("rule `nowhere`, field `canary.store`: names store `vault`"),
        "{err}"
    );
    assert!(
        err.contains("rule `empty`, field `canary.credentialRef`"),
        "{err}"
    );
    // A weight out of range and a misspelt field are refused when the rules are read.
    let err = parse_rules_json(
        r#"[{"id":"r","credentialRef":"a","priority":1,"canary":{"credentialRef":"b","weight":150}}]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("from 0 to 100, not 150"), "{err}");
    let err = parse_rules_json(
        r#"[{"id":"r","credentialRef":"a","priority":1,"canary":{"credentialRef":"b","weight":5,"fallback":true}}]"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fallback"), "{err}");
}
