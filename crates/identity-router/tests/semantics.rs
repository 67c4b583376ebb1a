//! The routing semantics of DESIGN.md: each behaviour of the reference that is kept, each one
//! that is fixed, and each addition.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;
use identity_core::{
    CredentialKind, CredentialStatus, MigrationPhase, MigrationRequest, ResourceKind, RoutingRule,
    parse_credentials_json, parse_rfc3339, parse_rules_json,
};
use identity_router::{DenialReason, ExplainedOutcome, Router};
use serde_json::json;

fn rule(id: &str, credential_ref: &str, priority: i64) -> RoutingRule {
    RoutingRule::new(id, credential_ref).with_priority(priority)
}

fn router(rules: Vec<RoutingRule>) -> Router {
    let store = store_with([
        fixed("cred-a", "a"),
        fixed("cred-b", "b"),
        fixed("cred-c", "c"),
        delegated("cred-user", "user"),
    ]);
    Router::builder()
        .default_store(store)
        .rules(rules)
        .build()
        .unwrap()
}

async fn granted_rule(router: &Router, ctx: &identity_core::RequestContext) -> String {
    router.resolve(ctx).await.unwrap().rule_id.to_string()
}

// ---- Kept from the reference -------------------------------------------------------------

#[tokio::test]
async fn higher_priority_wins_whatever_the_declaration_order() {
    let r = router(vec![
        rule("low", "a", 1),
        rule("high", "b", 10),
        rule("mid", "c", 5),
    ]);
    assert_eq!(granted_rule(&r, &build(ctx())).await, "high");
}

#[tokio::test]
async fn ties_go_to_the_rule_declared_first() {
    let r = router(vec![rule("first", "a", 5), rule("second", "b", 5)]);
    assert_eq!(granted_rule(&r, &build(ctx())).await, "first");
    let r = router(vec![rule("second", "b", 5), rule("first", "a", 5)]);
    assert_eq!(granted_rule(&r, &build(ctx())).await, "second");
}

#[tokio::test]
async fn every_present_matcher_must_hold_and_absent_ones_match_anything() {
    let strict = rule("strict", "a", 10)
        .with_match_user_id("alice")
        .with_match_provider("openai")
        .with_match_resource_kind(ResourceKind::Shared)
        .with_match_action(["read"]);
    let r = router(vec![strict, rule("any", "b", 0)]);
    assert_eq!(granted_rule(&r, &build(ctx())).await, "strict");
    for changed in [
        ctx().user_id("bob"),
        ctx().provider("anthropic"),
        ctx().resource_kind(ResourceKind::Personal),
        ctx().action("write"),
    ] {
        assert_eq!(granted_rule(&r, &build(changed)).await, "any");
    }
}

#[tokio::test]
async fn match_action_and_match_phase_take_one_value_or_a_list() {
    let rules = parse_rules_json(
        r#"[{"id":"one","credentialRef":"a","priority":9,"matchAction":"write"},
            {"id":"list","credentialRef":"b","priority":8,"matchAction":["read","delete"]},
            {"id":"phase","credentialRef":"c","priority":20,"matchPhase":"load"},
            {"id":"phases","credentialRef":"c","priority":19,"matchPhase":["extract","verify"]}]"#,
    )
    .unwrap();
    let r = router(rules);
    assert_eq!(granted_rule(&r, &build(ctx().action("write"))).await, "one");
    assert_eq!(
        granted_rule(&r, &build(ctx().action("delete"))).await,
        "list"
    );
    assert_eq!(granted_rule(&r, &build(ctx().action("read"))).await, "list");
    assert!(r.resolve(&build(ctx().action("admin"))).await.is_err());
    assert_eq!(
        granted_rule(&r, &phase_ctx(MigrationPhase::Load)).await,
        "phase"
    );
    assert_eq!(
        granted_rule(&r, &phase_ctx(MigrationPhase::Verify)).await,
        "phases"
    );
    assert_eq!(
        granted_rule(&r, &phase_ctx(MigrationPhase::Transform)).await,
        "list"
    );
}

#[tokio::test]
async fn a_phase_rule_never_matches_a_request_without_a_phase() {
    let r = router(vec![
        rule("dry", "a", 5).with_match_phase(MigrationPhase::ALL),
    ]);
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(denial.reason, DenialReason::NoMatchingRule);
}

#[tokio::test]
async fn a_spiffe_rule_needs_the_same_spiffe_id() {
    let r = router(vec![
        rule("workload", "a", 5).with_match_spiffe_id("spiffe://acme/agent"),
    ]);
    assert!(r.resolve(&build(ctx())).await.is_err());
    assert!(
        r.resolve(&build(ctx().spiffe_id("spiffe://acme/other")))
            .await
            .is_err()
    );
    assert!(
        r.resolve(&build(ctx().spiffe_id("spiffe://acme/agent")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn resolved_for_is_the_user_for_delegated_credentials_and_service_otherwise() {
    let r = router(vec![
        rule("mine", "user", 5).with_match_user_id("alice"),
        rule("shared", "a", 0),
    ]);
    let mine = r.resolve(&build(ctx())).await.unwrap();
    assert_eq!(
        (mine.kind, mine.resolved_for.as_str()),
        (CredentialKind::UserDelegated, "alice")
    );
    let shared = r.resolve(&build(ctx().user_id("bob"))).await.unwrap();
    assert_eq!(
        (shared.kind, shared.resolved_for.as_str()),
        (CredentialKind::Fixed, "service")
    );
}

#[tokio::test]
async fn by_default_the_top_rule_decides_even_when_its_credential_is_unavailable() {
    let r = router(vec![rule("top", "missing", 9), rule("fallback", "a", 1)]);
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(denial.rule_id.as_deref(), Some("top"));
    assert_eq!(denial.reason.code(), "credential_not_found");
}

#[tokio::test]
async fn a_missing_credential_is_named_by_its_rule_and_store_never_by_its_ref() {
    // In the reference's data a ref is sometimes the live token itself.
    const REF: &str = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";
    let r = router(vec![rule("top", REF, 9)]);
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(denial.reason.code(), "credential_not_found");
    assert_eq!(
        denial.to_string(),
        "rule `top`: store `default` holds no credential for the rule"
    );
    let json = serde_json::to_string(&denial).unwrap();
    assert!(!json.contains(REF), "{json}");
    assert!(!format!("{denial:?}").is_empty());
}

#[tokio::test]
async fn fall_through_is_an_explicit_option() {
    let store = store_with([
        fixed("cred-a", "a"),
        fixed("cred-revoked", "revoked").with_status(CredentialStatus::Revoked),
    ]);
    let r = Router::builder()
        .default_store(store)
        .store("down", DownStore)
        .fall_through(true)
        .rule(rule("missing", "missing", 9))
        .rule(rule("revoked", "revoked", 8))
        .rule(rule("down", "x", 7).with_store("down"))
        .rule(rule("other-provider", "a", 6).with_match_provider("anthropic"))
        .rule(rule("fallback", "a", 1))
        .build()
        .unwrap();
    let resolution = r.resolve(&build(ctx())).await.unwrap();
    assert_eq!(&*resolution.rule_id, "fallback");

    // When every matching rule is unavailable, the denial lists what was tried.
    let r = Router::builder()
        .default_store(store_with([]))
        .fall_through(true)
        .rule(rule("first", "x", 2))
        .rule(rule("second", "y", 1))
        .build()
        .unwrap();
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(denial.rule_id.as_deref(), Some("second"));
    assert_eq!(denial.fell_through.len(), 1);
    assert_eq!(&*denial.fell_through[0].0, "first");
}

#[tokio::test]
async fn fall_through_never_masks_a_misconfiguration() {
    let store = store_with([
        fixed("cred-w", "w").with_scope("read write"),
        fixed("cred-a", "a"),
    ]);
    let r = Router::builder()
        .default_store(store)
        .fall_through(true)
        .rule(rule("ro", "w", 9).with_read_only(true))
        .rule(rule("fallback", "a", 1))
        .build()
        .unwrap();
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(denial.reason.code(), "credential_not_read_only");
}

// ---- Fixed where the reference is wrong ----------------------------------------------------

#[test]
fn configuration_mistakes_are_errors_naming_the_rule_and_field() {
    let rules = parse_rules_json(
        r#"[{"id":"no-priority","credentialRef":"a"},
            {"id":"empty-provider","credentialRef":"a","priority":1,"matchProvider":""},
            {"id":"empty-list","credentialRef":"a","priority":1,"matchAction":[]},
            {"id":"empty-phases","credentialRef":"a","priority":1,"matchPhase":[]},
            {"id":"blank-action","credentialRef":"a","priority":1,"matchAction":["read"," "]},
            {"id":"bad-glob","credentialRef":"a","priority":1,"matchModel":"gpt-4?"},
            {"id":"dup","credentialRef":"a","priority":1},
            {"id":"dup","credentialRef":"a","priority":2},
            {"id":"unknown-store","credentialRef":"a","priority":1,"store":"vault"},
            {"id":"bad-ref","credentialRef":"","priority":1}]"#,
    )
    .unwrap();
    let err = Router::builder()
        .default_store(store_with([]))
        .rules(rules)
        .build()
        .unwrap_err();
    let found: Vec<(String, Option<String>)> = err
        .errors
        .iter()
        .map(|e| (e.location.clone(), e.field.clone()))
        .collect();
    let expected = [
        ("rule `no-priority`", "priority"),
        ("rule `empty-provider`", "matchProvider"),
        ("rule `empty-list`", "matchAction"),
        ("rule `empty-phases`", "matchPhase"),
        ("rule `blank-action`", "matchAction"),
        ("rule `bad-glob`", "matchModel"),
        ("rule `dup`", "id"),
        ("rule `unknown-store`", "store"),
        ("rule `bad-ref`", "credentialRef"),
    ];
    for (location, field) in expected {
        assert!(
            found.contains(&(location.to_owned(), Some(field.to_owned()))),
            "missing error for {location} {field}: {err}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{err}");
}

#[test]
fn a_rule_without_a_store_needs_a_default_store() {
    let err = Router::builder()
        .rule(rule("r", "a", 1))
        .build()
        .unwrap_err();
    assert_eq!(err.errors[0].field.as_deref(), Some("store"));
}

#[test]
fn an_unparseable_expiry_is_a_load_error_naming_the_credential() {
    let err = parse_credentials_json(
        r#"[{"id":"ok","kind":"fixed","status":"active","ref":"a","expiresAt":"2030-01-01T00:00:00Z"},
            {"id":"bad","kind":"fixed","status":"active","ref":"b","expiresAt":"2030-13-01"}]"#,
    )
    .unwrap_err();
    assert!(err.location.contains("credentials[1] (`bad`)"), "{err}");
    assert!(err.problem.contains("expiresAt"), "{err}");
}

#[tokio::test]
async fn the_router_refuses_every_credential_that_is_not_active() {
    for status in [
        CredentialStatus::Pending,
        CredentialStatus::Unclaimed,
        CredentialStatus::Revoked,
    ] {
        let store = store_with([fixed("cred-a", "a").with_status(status)]);
        let r = Router::builder()
            .default_store(store)
            .rule(rule("r", "a", 1))
            .build()
            .unwrap();
        let denial = r.resolve(&build(ctx())).await.unwrap_err();
        assert_eq!(
            denial.reason,
            DenialReason::NotActive {
                credential_id: "cred-a".into(),
                status
            },
        );
    }
}

#[tokio::test]
async fn read_only_means_the_credential_cannot_write() {
    for (scope, allowed) in [
        ("read", true),
        ("Read-only replica", true),
        ("read:write", false),
        ("read write", false),
        ("All projects - read/write", false),
        ("write", false),
        ("", false),
    ] {
        let store = store_with([fixed("cred-a", "a").with_scope(scope)]);
        let r = Router::builder()
            .default_store(store)
            .rule(rule("ro", "a", 1).with_read_only(true))
            .build()
            .unwrap();
        let outcome = r.resolve(&build(ctx())).await;
        assert_eq!(outcome.is_ok(), allowed, "scope {scope:?}: {outcome:?}");
        if let Err(denial) = outcome {
            assert_eq!(denial.reason.code(), "credential_not_read_only");
        }
    }
}

#[tokio::test]
async fn expiries_are_compared_as_times_with_the_clock_skew() {
    let now = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    // As text "2030-01-01T08:59:50+09:00" sorts after the clock; as a time it is 10 s before it.
    let cases = [
        ("2030-01-01T08:59:50+09:00", Duration::ZERO, false),
        ("2030-01-01T00:00:10Z", Duration::ZERO, true),
        ("2030-01-01T00:00:10Z", Duration::from_secs(30), false),
        ("2030-01-01T00:01:00Z", Duration::from_secs(30), true),
    ];
    for (expires, skew, allowed) in cases {
        let store =
            store_with([fixed("cred-a", "a").with_expires_at(parse_rfc3339(expires).unwrap())]);
        let r = Router::builder()
            .default_store(store)
            .clock(move || now)
            .clock_skew(skew)
            .rule(rule("r", "a", 1))
            .build()
            .unwrap();
        let outcome = r.resolve(&build(ctx())).await;
        assert_eq!(
            outcome.is_ok(),
            allowed,
            "{expires} skew {skew:?}: {outcome:?}"
        );
        if let Err(denial) = outcome {
            assert_eq!(denial.reason.code(), "credential_expired");
        }
    }
}

#[tokio::test]
async fn the_rule_kind_is_checked_against_the_credential() {
    let r = router(vec![
        rule("r", "a", 1).with_credential_kind(CredentialKind::UserDelegated),
    ]);
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(
        denial.reason,
        DenialReason::KindMismatch {
            credential_id: "cred-a".into(),
            expected: CredentialKind::UserDelegated,
            actual: CredentialKind::Fixed,
        }
    );
    let r = router(vec![
        rule("r", "a", 1).with_credential_kind(CredentialKind::Fixed),
    ]);
    assert!(r.resolve(&build(ctx())).await.is_ok());
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_a_typed_denial() {
    let r = Router::builder()
        .default_store(DownStore)
        .rule(rule("r", "a", 1))
        .build()
        .unwrap();
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    match denial.reason {
        DenialReason::StoreUnavailable {
            store, retryable, ..
        } => {
            assert_eq!(store, "default");
            assert!(retryable);
        }
        other => panic!("expected store_unavailable, got {other:?}"),
    }
}

// ---- Beyond the reference ----------------------------------------------------------------

#[tokio::test]
async fn resource_id_and_model_take_star_globs() {
    let r = router(vec![
        rule("prod-db", "a", 9).with_match_resource_id("db-*-prod"),
        rule("gpt4", "b", 8).with_match_model("gpt-4*"),
        rule("exact", "c", 7).with_match_resource_id("docs"),
    ]);
    assert_eq!(
        granted_rule(&r, &build(ctx().resource_id("db-eu-prod"))).await,
        "prod-db"
    );
    assert_eq!(
        granted_rule(&r, &build(ctx().resource_id("db-eu-dev"))).await,
        "gpt4"
    );
    assert_eq!(
        granted_rule(&r, &build(ctx().model("gpt-3.5"))).await,
        "exact"
    );
    assert!(
        r.resolve(&build(ctx().resource_id("docs2").model("o1")))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn explain_lists_every_rule_with_its_mismatches_and_the_decision() {
    let r = router(vec![
        rule("provider", "a", 9)
            .with_match_provider("anthropic")
            .with_match_action(["write"]),
        rule("user", "user", 5).with_match_user_id("alice"),
        rule("any", "b", 0),
    ]);
    let explanation = r.explain(&build(ctx())).await;
    let ids: Vec<&str> = explanation.rules.iter().map(|v| &*v.rule_id).collect();
    assert_eq!(ids, ["provider", "user", "any"]);
    let fields: Vec<&str> = explanation.rules[0]
        .mismatches
        .iter()
        .map(|m| m.field)
        .collect();
    assert_eq!(fields, ["matchProvider", "matchAction"]);
    assert_eq!(
        explanation.rules[0].mismatches[0].actual.as_deref(),
        Some("openai")
    );
    assert!(explanation.rules[1].matched && explanation.rules[2].matched);
    assert_eq!(explanation.decided_by(), Some("user"));
    assert!(matches!(
        explanation.outcome,
        ExplainedOutcome::Granted { .. }
    ));
    let text = serde_json::to_string(&explanation).unwrap();
    assert!(!text.contains("secret-of-"), "{text}");
}

// ---- Migration pairs -----------------------------------------------------------------------

fn migration(phase: &str, dry_run: bool) -> MigrationRequest {
    MigrationRequest::from_json(&json!({
        "migrationId": "m1", "phase": phase, "sourceResourceId": "old-db",
        "targetResourceId": "new-db", "userId": "alice", "provider": "openai",
        "model": "gpt-4o", "traceId": "t1", "dryRun": dry_run
    }))
    .unwrap()
}

#[tokio::test]
async fn a_pair_resolves_source_for_reading_and_target_by_phase() {
    let store = store_with([
        fixed("src-ro", "src")
            .with_scope("read")
            .with_expires_at(parse_rfc3339("2031-06-01T00:00:00+02:00").unwrap()),
        fixed("dst-rw", "dst-rw")
            .with_scope("read write")
            .with_expires_at(parse_rfc3339("2031-05-31T23:00:00Z").unwrap()),
        fixed("dst-ro", "dst-ro").with_scope("read"),
    ]);
    let r = Router::builder()
        .default_store(store)
        .rule(
            rule("source", "src", 5)
                .with_match_resource_id("old-db")
                .with_match_action(["read"])
                .with_read_only(true),
        )
        .rule(
            rule("target-write", "dst-rw", 5)
                .with_match_resource_id("new-db")
                .with_match_action(["write"]),
        )
        .rule(
            rule("target-read", "dst-ro", 5)
                .with_match_resource_id("new-db")
                .with_match_action(["read"])
                .with_read_only(true),
        )
        .build()
        .unwrap();
    let pair = r.resolve_pair(&migration("load", false)).await.unwrap();
    assert_eq!(
        (
            pair.source.credential_id.as_str(),
            pair.target.credential_id.as_str()
        ),
        ("src-ro", "dst-rw")
    );
    // 2031-06-01T00:00+02:00 is 2031-05-31T22:00Z: earlier than the target's, though it sorts later as text.
    assert_eq!(
        pair.expires_at,
        Some(parse_rfc3339("2031-05-31T22:00:00Z").unwrap())
    );
    let dry = r.resolve_pair(&migration("load", true)).await.unwrap();
    assert_eq!(dry.target.credential_id, "dst-ro");
    let verify = r.resolve_pair(&migration("verify", false)).await.unwrap();
    assert_eq!(verify.target.credential_id, "dst-ro");
    assert_eq!(
        verify.expires_at,
        Some(parse_rfc3339("2031-05-31T22:00:00Z").unwrap())
    );
}

#[tokio::test]
async fn a_pair_denial_says_which_side_failed() {
    let r = router(vec![
        rule("source-only", "a", 5).with_match_resource_id("old-db"),
    ]);
    let denial = r
        .resolve_pair(&migration("extract", false))
        .await
        .unwrap_err();
    assert!(denial.source.is_none());
    assert_eq!(
        denial.target.as_ref().unwrap().reason,
        DenialReason::NoMatchingRule
    );
    assert!(denial.to_string().starts_with("target: "), "{denial}");
    let r = router(vec![]);
    let denial = r
        .resolve_pair(&migration("extract", false))
        .await
        .unwrap_err();
    assert!(denial.source.is_some() && denial.target.is_some());
}

/// A store whose backend refuses, the way an authorization server answers an exchange.
#[derive(Debug)]
struct RefusingStore(identity_core::Error);

#[identity_core::async_trait]
impl identity_core::CredentialStore for RefusingStore {
    fn backend(&self) -> &'static str {
        "refusing"
    }
    async fn find_by_ref(
        &self,
        _: &identity_core::CredentialRef,
        _: &identity_core::RequestContext,
    ) -> Result<Option<identity_core::Credential>, identity_core::Error> {
        Err(match &self.0 {
            identity_core::Error::Protocol {
                code, description, ..
            } => identity_core::Error::Protocol {
                backend: "refusing",
                code: code.clone(),
                description: description.clone(),
            },
            _ => identity_core::Error::Unauthenticated {
                backend: "refusing",
                detail: "no subject token".into(),
            },
        })
    }
    async fn list_active(&self) -> Result<Vec<identity_core::Credential>, identity_core::Error> {
        Ok(Vec::new())
    }
    async fn list_by_kind(
        &self,
        _: CredentialKind,
    ) -> Result<Vec<identity_core::Credential>, identity_core::Error> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_backend_refusal_is_its_own_denial_and_never_falls_through() {
    for (error, code) in [
        (
            identity_core::Error::Protocol {
                backend: "x",
                code: "invalid_grant".into(),
                description: None,
            },
            "invalid_grant",
        ),
        (
            identity_core::Error::Unauthenticated {
                backend: "x",
                detail: String::new(),
            },
            "unauthenticated",
        ),
    ] {
        let r = Router::builder()
            .default_store(store_with([fixed("cred-a", "a")]))
            .store("exchange", RefusingStore(error))
            .fall_through(true)
            .rule(rule("exchange", "crm", 9).with_store("exchange"))
            .rule(rule("fallback", "a", 1))
            .build()
            .unwrap();
        let denial = r.resolve(&build(ctx())).await.unwrap_err();
        assert_eq!(denial.reason.code(), "store_refused");
        match denial.reason {
            DenialReason::StoreRefused {
                store,
                backend_code: got,
                ..
            } => {
                assert_eq!((store.as_str(), got.as_str()), ("exchange", code));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_credential_without_the_required_scopes_needs_the_users_consent() {
    // `cred-user` holds scope `read` only.
    let r = router(vec![rule("crm", "user", 5).with_require_scopes([
        "read",
        "crm:write",
        "crm:admin",
    ])]);
    let denial = r.resolve(&build(ctx())).await.unwrap_err();
    assert_eq!(denial.reason.code(), "consent_required");
    let DenialReason::ConsentRequired {
        scopes, user_id, ..
    } = &denial.reason
    else {
        panic!("{denial:?}")
    };
    assert_eq!(scopes, &["crm:write", "crm:admin"]);
    assert_eq!(user_id, &build(ctx()).user_id);
    assert!(
        denial.to_string().contains("crm:write crm:admin"),
        "{denial}"
    );
    // The scopes it holds are enough when those are all the rule requires.
    let r = router(vec![rule("crm", "user", 5).with_require_scopes(["read"])]);
    assert_eq!(granted_rule(&r, &build(ctx())).await, "crm");
    // Consent is a credential missing for this user: with fall-through, the next rule answers.
    let r = Router::builder()
        .default_store(store_with([
            delegated("cred-user", "user"),
            fixed("cred-a", "a"),
        ]))
        .rule(rule("crm", "user", 5).with_require_scopes(["crm:write"]))
        .rule(rule("service", "a", 1))
        .fall_through(true)
        .build()
        .unwrap();
    assert_eq!(granted_rule(&r, &build(ctx())).await, "service");
}
