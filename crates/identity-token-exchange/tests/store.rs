//! The token exchange store against a real authorization server (oidc-provider with the
//! project's RFC 8693 grant, `fixtures/oidc-provider`), through the router.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::{
    CredentialRef, CredentialStore, RequestContext, ResourceKind, RoutingRule, Secret, SubjectToken,
};
use identity_router::{DenialReason, Router};
use identity_test_support::{AuthorizationServer, CLIENT_ID, CLIENT_SECRET, CRM, ERP};
use identity_token_exchange::{ExchangeConfig, ExchangeConfigBuilder, TokenExchangeStore};

fn slot(server: &AuthorizationServer, reference: &str) -> ExchangeConfigBuilder {
    ExchangeConfig::builder(reference, CLIENT_ID)
        .token_endpoint(server.token_endpoint())
        .allow_http_loopback(true)
        .client_secret(Secret::new(CLIENT_SECRET))
}

fn context(user: &str, token: Option<&str>) -> RequestContext {
    let mut builder = RequestContext::builder()
        .user_id(user)
        .resource_id("crm")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("gpt-4o")
        .action("read")
        .trace_id("t");
    if let Some(token) = token {
        builder = builder.subject_token(SubjectToken::new(Secret::new(token)));
    }
    builder.build().unwrap()
}

fn router(store: Arc<TokenExchangeStore>) -> Router {
    Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("crm", "crm-token")
                .with_priority(2)
                .with_match_resource_id("crm"),
        )
        .rule(RoutingRule::new("erp", "erp-token").with_priority(1))
        .build()
        .unwrap()
}

fn store(server: &AuthorizationServer) -> Arc<TokenExchangeStore> {
    Arc::new(
        TokenExchangeStore::builder()
            .config(
                slot(server, "crm-token")
                    .audience(CRM)
                    .scopes(["crm:read"])
                    .build()
                    .unwrap(),
            )
            .config(
                slot(server, "erp-token")
                    .audience(ERP)
                    .scopes(["erp:read"])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn a_resolution_carries_the_callers_exchanged_token() {
    let server = AuthorizationServer::start().await;
    let router = router(store(&server));
    let alice = server.subject_token("alice", "crm:read crm:write").await;
    let resolution = router
        .resolve(&context("alice", Some(&alice)))
        .await
        .unwrap();
    assert_eq!(resolution.resolved_for, "alice");
    assert!(resolution.expires_at.is_some());
    let token = resolution.secret().unwrap().expose_secret();
    assert_ne!(token, alice);
    let seen = server.introspect(token).await;
    assert_eq!(
        (
            seen["sub"].as_str(),
            seen["aud"].as_str(),
            seen["scope"].as_str()
        ),
        (Some("alice"), Some(CRM), Some("crm:read"))
    );
    assert!(!format!("{resolution:?}").contains(token));
}

#[tokio::test]
async fn without_the_callers_token_no_call_is_made() {
    let server = AuthorizationServer::start().await;
    let router = router(store(&server));
    let denial = router.resolve(&context("alice", None)).await.unwrap_err();
    assert!(
        matches!(&denial.reason, DenialReason::StoreRefused { backend_code, .. } if backend_code == "unauthenticated"),
        "{denial:?}"
    );
    assert_eq!(server.exchanges().await, 0);
}

#[tokio::test]
async fn the_servers_refusals_are_denials_with_their_code() {
    let server = AuthorizationServer::start().await;
    let router = router(store(&server));
    // The user holds crm:read only; the erp slot asks for erp:read.
    let alice = server.subject_token("alice", "crm:read").await;
    let mut erp = context("alice", Some(&alice));
    erp.resource_id = "erp".into();
    let denial = router.resolve(&erp).await.unwrap_err();
    assert!(
        matches!(&denial.reason, DenialReason::StoreRefused { backend_code, .. } if backend_code == "invalid_scope"),
        "{denial:?}"
    );
    let bogus = router
        .resolve(&context("alice", Some("not-issued-by-the-server")))
        .await
        .unwrap_err();
    assert!(
        matches!(&bogus.reason, DenialReason::StoreRefused { backend_code, .. } if backend_code == "invalid_grant"),
        "{bogus:?}"
    );
    // Failures are not cached: the same refusal asks the server again.
    let before = server.exchanges().await;
    router
        .resolve(&context("alice", Some("not-issued-by-the-server")))
        .await
        .unwrap_err();
    assert_eq!(server.exchanges().await, before + 1);
}

#[tokio::test]
async fn tokens_are_cached_per_subject_and_per_slot() {
    let server = AuthorizationServer::start().await;
    let router = router(store(&server));
    let alice = server.subject_token("alice", "crm:read erp:read").await;
    let bob = server.subject_token("bob", "crm:read").await;
    let first = router
        .resolve(&context("alice", Some(&alice)))
        .await
        .unwrap();
    let again = router
        .resolve(&context("alice", Some(&alice)))
        .await
        .unwrap();
    assert_eq!(
        first.secret().unwrap().expose_secret(),
        again.secret().unwrap().expose_secret()
    );
    assert_eq!(server.exchanges().await, 1);

    let bobs = router.resolve(&context("bob", Some(&bob))).await.unwrap();
    assert_ne!(
        bobs.secret().unwrap().expose_secret(),
        first.secret().unwrap().expose_secret()
    );
    assert_eq!(
        server
            .introspect(bobs.secret().unwrap().expose_secret())
            .await["sub"],
        "bob"
    );
    assert_eq!(server.exchanges().await, 2);

    let mut erp = context("alice", Some(&alice));
    erp.resource_id = "erp".into();
    router.resolve(&erp).await.unwrap();
    assert_eq!(server.exchanges().await, 3);
}

#[tokio::test]
async fn concurrent_misses_for_one_user_make_one_call() {
    let server = AuthorizationServer::start().await;
    let router = Arc::new(router(store(&server)));
    let alice = server.subject_token("alice", "crm:read").await;
    let ctx = context("alice", Some(&alice));
    let resolutions = futures::future::join_all((0..500).map(|_| router.resolve(&ctx))).await;
    let tokens: std::collections::HashSet<String> = resolutions
        .into_iter()
        .map(|r| r.unwrap().secret().unwrap().expose_secret().to_owned())
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(server.exchanges().await, 1);
}

#[tokio::test]
async fn a_token_inside_its_skew_window_is_exchanged_again() {
    let server = AuthorizationServer::start().await;
    // Lives 32 s; with a 30 s skew the cache keeps it 2 s.
    let store = Arc::new(
        TokenExchangeStore::builder()
            .config(
                slot(&server, "crm-token")
                    .audience(CRM)
                    .extra_param("fixture_expires_in", "32")
                    .build()
                    .unwrap(),
            )
            .skew(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let alice = server.subject_token("alice", "crm:read").await;
    let ctx = context("alice", Some(&alice));
    let reference = CredentialRef::new("crm-token").unwrap();
    let first = store.find_by_ref(&reference, &ctx).await.unwrap().unwrap();
    store.find_by_ref(&reference, &ctx).await.unwrap().unwrap();
    assert_eq!(server.exchanges().await, 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = store.find_by_ref(&reference, &ctx).await.unwrap().unwrap();
    assert_eq!(server.exchanges().await, 2);
    assert_ne!(
        first.secret.unwrap().expose_secret(),
        later.secret.unwrap().expose_secret()
    );
}

#[tokio::test]
async fn invalidation_by_slot_by_subject_and_in_full() {
    let server = AuthorizationServer::start().await;
    let store = store(&server);
    let crm = CredentialRef::new("crm-token").unwrap();
    let alice = server.subject_token("alice", "crm:read").await;
    let bob = server.subject_token("bob", "crm:read").await;
    let (for_alice, for_bob) = (context("alice", Some(&alice)), context("bob", Some(&bob)));
    store.find_by_ref(&crm, &for_alice).await.unwrap();
    store.find_by_ref(&crm, &for_bob).await.unwrap();
    assert_eq!(server.exchanges().await, 2);

    store.invalidate_subject(&Secret::new(alice.clone()));
    store.find_by_ref(&crm, &for_bob).await.unwrap();
    assert_eq!(server.exchanges().await, 2, "bob's token is still cached");
    store.find_by_ref(&crm, &for_alice).await.unwrap();
    assert_eq!(server.exchanges().await, 3, "alice's was forgotten");

    store.invalidate(&crm);
    store.find_by_ref(&crm, &for_bob).await.unwrap();
    assert_eq!(server.exchanges().await, 4);

    store.flush();
    store.find_by_ref(&crm, &for_alice).await.unwrap();
    store.find_by_ref(&crm, &for_bob).await.unwrap();
    assert_eq!(server.exchanges().await, 6);
}

#[tokio::test]
async fn the_token_endpoint_is_discovered_from_the_issuer() {
    let server = AuthorizationServer::start().await;
    let config = ExchangeConfig::builder("crm-token", CLIENT_ID)
        .issuer(server.issuer())
        .allow_http_loopback(true)
        .client_secret(Secret::new(CLIENT_SECRET))
        .audience(CRM)
        .build()
        .unwrap();
    assert!(config.token_endpoint().is_none());
    let store = TokenExchangeStore::builder()
        .config(config)
        .build()
        .unwrap();
    let alice = server.subject_token("alice", "crm:read").await;
    let credential = store
        .find_by_ref(
            &CredentialRef::new("crm-token").unwrap(),
            &context("alice", Some(&alice)),
        )
        .await
        .unwrap()
        .unwrap();
    let token = credential.secret.unwrap();
    assert_eq!(
        server.introspect(token.expose_secret()).await["sub"],
        "alice"
    );
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let server = AuthorizationServer::start().await;
    // The same server under another name: its metadata says 127.0.0.1, not localhost.
    let other_name = server.issuer().replace("127.0.0.1", "localhost");
    let config = ExchangeConfig::builder("crm-token", CLIENT_ID)
        .issuer(other_name)
        .allow_http_loopback(true)
        .client_secret(Secret::new(CLIENT_SECRET))
        .audience(CRM)
        .build()
        .unwrap();
    let store = TokenExchangeStore::builder()
        .config(config)
        .build()
        .unwrap();
    let alice = server.subject_token("alice", "crm:read").await;
    let err = store
        .find_by_ref(
            &CredentialRef::new("crm-token").unwrap(),
            &context("alice", Some(&alice)),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not the one asked for"), "{err}");
    assert_eq!(server.exchanges().await, 0);
}

#[tokio::test]
async fn an_actor_source_delegates_and_a_subject_source_stands_in_for_a_missing_caller_token() {
    let server = AuthorizationServer::start().await;
    let agent = server.subject_token("agent-7", "crm:read").await;
    let service = server.subject_token("svc-reporting", "crm:read").await;
    let store = TokenExchangeStore::builder()
        .config(
            slot(&server, "crm-token")
                .audience(CRM)
                .actor_source(identity_token_exchange::StaticToken::new(Secret::new(
                    agent,
                )))
                .tag("team", "sales")
                .build()
                .unwrap(),
        )
        .config(
            slot(&server, "report-token")
                .audience(CRM)
                .subject_source(identity_token_exchange::StaticToken::new(Secret::new(
                    service,
                )))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let bob = server.subject_token("bob", "crm:read").await;
    let delegated = store
        .find_by_ref(
            &CredentialRef::new("crm-token").unwrap(),
            &context("bob", Some(&bob)),
        )
        .await
        .unwrap()
        .unwrap();
    let seen = server
        .introspect(delegated.secret.unwrap().expose_secret())
        .await;
    assert_eq!(
        (seen["sub"].as_str(), seen["act"]["sub"].as_str()),
        (Some("bob"), Some("agent-7"))
    );

    let reporting = store
        .find_by_ref(
            &CredentialRef::new("report-token").unwrap(),
            &context("anyone", None),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server
            .introspect(reporting.secret.unwrap().expose_secret())
            .await["sub"],
        "svc-reporting"
    );

    let listed = store.list_active().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].tags.get("team").map(String::as_str),
        Some("sales")
    );
    assert!(listed.iter().all(|c| c.secret.is_none()));
}
