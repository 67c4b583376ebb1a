//! A planted canary secret never appears in `Debug` output, error messages, serialized
//! outcomes or the `tracing` output of a resolution, granted or denied.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

mod common;

use common::*;
use identity_core::{
    Credential, CredentialKind, CredentialStatus, MigrationRequest, RoutingRule, Secret,
    parse_rfc3339,
};
use identity_router::Router;
use identity_test_support::CapturedLogs;
use serde_json::json;

const CANARY: &str = "sk-canary-4be1f0d2-must-never-leak";

fn canary(id: &str, reference: &str) -> Credential {
    Credential::new(id, CredentialKind::Fixed, reference)
        .unwrap()
        .with_scope("read")
        .with_secret(Secret::new(CANARY))
}

fn router() -> Router {
    let store = store_with([
        canary("granted", "granted"),
        canary("writable", "writable").with_scope("read write"),
        canary("expired", "expired")
            .with_expires_at(parse_rfc3339("2001-01-01T00:00:00Z").unwrap()),
        canary("revoked", "revoked").with_status(CredentialStatus::Revoked),
        canary("fixed", "fixed"),
    ]);
    Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("grant", "granted")
                .with_priority(1)
                .with_match_action(["read"]),
        )
        .rule(
            RoutingRule::new("ro", "writable")
                .with_priority(1)
                .with_match_action(["write"])
                .with_read_only(true),
        )
        .rule(
            RoutingRule::new("exp", "expired")
                .with_priority(1)
                .with_match_action(["expire"]),
        )
        .rule(
            RoutingRule::new("rev", "revoked")
                .with_priority(1)
                .with_match_action(["revoke"]),
        )
        .rule(
            RoutingRule::new("kind", "fixed")
                .with_priority(1)
                .with_match_action(["kind"])
                .with_credential_kind(CredentialKind::UserDelegated),
        )
        .build()
        .unwrap()
}

#[test]
fn no_resolution_outcome_shows_the_canary() {
    let captured = CapturedLogs::default();
    let subscriber = captured.subscriber();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let router = router();

    let mut shown = String::new();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let granted = router.resolve(&build(ctx().action("read"))).await.unwrap();
            // The canary really is behind the accessor: the checks below can fail.
            assert_eq!(granted.secret().unwrap().expose_secret(), CANARY);
            shown += &format!("{granted:?}\n{router:?}\n");

            for action in ["write", "expire", "revoke", "kind", "unmatched"] {
                let denial = router
                    .resolve(&build(ctx().action(action)))
                    .await
                    .unwrap_err();
                shown += &format!(
                    "{denial}\n{denial:?}\n{}\n",
                    serde_json::to_string(&denial).unwrap()
                );
                let explanation = router.explain(&build(ctx().action(action))).await;
                shown += &format!(
                    "{explanation:?}\n{}\n",
                    serde_json::to_string(&explanation).unwrap()
                );
            }

            let request = MigrationRequest::from_json(&json!({
                "migrationId": "m1", "phase": "verify", "sourceResourceId": "s",
                "targetResourceId": "t", "userId": "alice", "provider": "openai",
                "model": "gpt-4o", "traceId": "t1"}))
            .unwrap();
            let pair = router.resolve_pair(&request).await.unwrap();
            shown += &format!("{pair:?}\n");
        });
    });

    let log = captured.text();
    assert!(
        log.contains("credential granted") && log.contains("credential denied"),
        "{log}"
    );
    assert!(
        log.contains("credential_not_read_only") && log.contains("credential_expired"),
        "{log}"
    );
    assert!(
        !log.contains(CANARY),
        "the canary is in the tracing output:\n{log}"
    );
    assert!(
        !shown.contains(CANARY),
        "the canary is in Debug, Display or JSON output:\n{shown}"
    );
}
