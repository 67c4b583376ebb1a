//! The client flows against a real authorization server (oidc-provider, `fixtures/oidc-provider`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use identity_core::{Error, Secret};
use identity_dcr::{ClientMetadata, Dcr};
use identity_http::{ClientCredentials, OutboundPolicy};
use identity_oauth::{AuthorizationRequest, OAuthClient, PendingAuthorization, TokenSet};
use identity_test_support::AuthorizationServer;

async fn web_app(server: &AuthorizationServer) -> OAuthClient {
    let dcr = Dcr::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    OAuthClient::new(
        dcr.http().clone(),
        metadata,
        ClientCredentials::basic("web-app", Secret::new("web-app-secret")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_cached_and_shared_by_concurrent_callers() {
    let server = AuthorizationServer::start().await;
    let client = web_app(&server).await;
    let calls = (0..20).map(|_| client.client_credentials(&["crm:read"], None));
    let results = futures::future::join_all(calls).await;
    let first = results[0]
        .as_ref()
        .unwrap()
        .access_token
        .expose_secret()
        .to_owned();
    // One request: every caller holds the same token.
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().access_token.expose_secret() == first)
    );
    let again = client
        .client_credentials(&["crm:read"], None)
        .await
        .unwrap();
    assert_eq!(again.access_token.expose_secret(), first);
    let introspected = server.introspect(&first).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["client_id"], "web-app");
    assert!(again.expires_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_makes_introspection_say_inactive() {
    let server = AuthorizationServer::start().await;
    let client = web_app(&server).await;
    let tokens = client
        .client_credentials(&["crm:read"], None)
        .await
        .unwrap();
    assert_eq!(
        server.introspect(tokens.access_token.expose_secret()).await["active"],
        true
    );
    client.revoke(&tokens).await.unwrap();
    let after = server.introspect(tokens.access_token.expose_secret()).await;
    assert_eq!(after["active"], false, "{after}");
}

/// A client of the authorization code flow, registered for the test.
async fn code_client(server: &AuthorizationServer) -> OAuthClient {
    let dcr = Dcr::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    let mut wanted = ClientMetadata::default();
    wanted.client_name = Some("code-flow".into());
    wanted.redirect_uris = vec!["http://127.0.0.1:1/callback".into()];
    wanted.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
    wanted.scope = Some("openid offline_access".into());
    wanted.response_types = vec!["code".into()];
    wanted.token_endpoint_auth_method = Some("client_secret_basic".into());
    let registered = dcr.register(&metadata, &wanted, None).await.unwrap();
    OAuthClient::new(
        dcr.http().clone(),
        metadata,
        ClientCredentials::basic(registered.client_id, registered.client_secret.unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_start_only_with_pkce_and_codes_from_elsewhere_are_refused() {
    let server = AuthorizationServer::start().await;
    let client = code_client(&server).await;
    let metadata = client.server().clone();
    assert!(
        metadata
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
    );
    let (url, pending) = AuthorizationRequest::new("code-flow", "http://127.0.0.1:1/callback")
        .scopes(["openid"])
        .prompt("consent")
        .build(&metadata)
        .unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/auth?", server.issuer()))
    );
    assert!(
        url.query_pairs()
            .any(|(k, v)| k == "code_challenge" && v == pending.pkce.challenge())
    );

    // A code the server never issued is refused, as a replayed one is.
    let err = client
        .exchange_code(&pending, &Secret::new("not-a-code"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );

    // A flow started with another server cannot finish here.
    let foreign = PendingAuthorization {
        issuer: "https://other.example.com".into(),
        ..pending
    };
    let err = client
        .exchange_code(&foreign, &Secret::new("c"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_issuer"),
        "{err:?}"
    );

    // A refresh token the server does not know means "connect again", not a retry loop.
    let mut stale = TokenSet::bearer(Secret::new("a"), None);
    stale.refresh_token = Some(Secret::new("unknown-refresh-token"));
    let err = client.refresh(&stale, &[]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unauthenticated { detail, .. } if detail.contains("connect again")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

const REDIRECT: &str = "http://127.0.0.1:1/callback";

/// Runs the authorization code flow with PKCE for `user` up to the callback: the pending
/// authorization and the callback's query.
async fn authorize(
    server: &AuthorizationServer,
    client: &OAuthClient,
    user: &str,
) -> (PendingAuthorization, Vec<(String, String)>) {
    let (url, pending) = AuthorizationRequest::new(client.client_id(), REDIRECT)
        .scopes(["openid", "offline_access"])
        .prompt("consent")
        .login_hint(user)
        .build(client.server())
        .unwrap();
    let callback = server.follow_authorization(url.as_str(), REDIRECT).await;
    let query = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (pending, query)
}

fn pairs(query: &[(String, String)]) -> Vec<(&str, &str)> {
    query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_with_pkce_then_refresh_with_rotation_then_revocation() {
    let server = AuthorizationServer::start().await;
    let client = code_client(&server).await;
    let (pending, query) = authorize(&server, &client, "alice").await;
    // RFC 9207: the server names itself in the callback.
    assert!(
        query
            .iter()
            .any(|(k, v)| k == "iss" && v == server.issuer()),
        "{query:?}"
    );
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let tokens = client.exchange_code(&pending, &code).await.unwrap();
    assert!(tokens.refresh_token.is_some() && tokens.id_token.is_some());
    assert!(tokens.expires_at.is_some());
    let claims = client.userinfo(&tokens.access_token).await.unwrap();
    assert_eq!(claims["sub"], "alice");

    // Refresh rotates the refresh token; the old one, spent, means "connect again".
    let refreshed = client.refresh(&tokens, &[]).await.unwrap();
    let old = tokens.refresh_token.as_ref().unwrap().expose_secret();
    let new = refreshed
        .refresh_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_ne!(old, new);
    assert_ne!(
        refreshed.access_token.expose_secret(),
        tokens.access_token.expose_secret()
    );
    let reuse = client.refresh(&tokens, &[]).await.unwrap_err();
    assert!(matches!(reuse, Error::Unauthenticated { .. }), "{reuse:?}");

    // A replayed code is refused, and the server withdraws what the code gave.
    let (pending, query) = authorize(&server, &client, "carol").await;
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let tokens = client.exchange_code(&pending, &code).await.unwrap();
    let replay = client.exchange_code(&pending, &code).await.unwrap_err();
    assert!(
        matches!(&replay, Error::Protocol { code, .. } if code == "invalid_grant"),
        "{replay:?}"
    );
    let withdrawn = client.refresh(&tokens, &[]).await.unwrap_err();
    assert!(
        matches!(withdrawn, Error::Unauthenticated { .. }),
        "{withdrawn:?}"
    );

    // A fresh grant, revoked: introspection says inactive for both tokens.
    let (pending, query) = authorize(&server, &client, "bob").await;
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let tokens = client.exchange_code(&pending, &code).await.unwrap();
    client.revoke(&tokens).await.unwrap();
    let refresh = tokens.refresh_token.as_ref().unwrap().expose_secret();
    assert_eq!(server.introspect(refresh).await["active"], false);
    assert_eq!(
        server.introspect(tokens.access_token.expose_secret()).await["active"],
        false
    );
    let after = client.refresh(&tokens, &[]).await.unwrap_err();
    assert!(matches!(after, Error::Unauthenticated { .. }), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_state_a_wrong_issuer_and_a_wrong_or_missing_verifier_are_refused() {
    let server = AuthorizationServer::start().await;
    let client = code_client(&server).await;
    let (pending, query) = authorize(&server, &client, "alice").await;

    let mut forged_state = query.clone();
    for (k, v) in &mut forged_state {
        if k == "state" {
            *v = "forged".into();
        }
    }
    assert!(identity_oauth::check_callback(&pending, &pairs(&forged_state)).is_err());
    let mut mixed_up = query.clone();
    for (k, v) in &mut mixed_up {
        if k == "iss" {
            *v = "https://evil.example.com".into();
        }
    }
    assert!(identity_oauth::check_callback(&pending, &pairs(&mixed_up)).is_err());

    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    // The code without its verifier (an intercepted code), sent as an attacker would.
    let stolen = identity_test_support::http_client()
        .post(server.token_endpoint())
        .basic_auth(client.client_id(), Some("wrong-or-absent"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 401);
    // With the client's own credentials but another verifier.
    let other = PendingAuthorization {
        pkce: identity_oauth::Pkce::generate().unwrap(),
        ..pending.clone()
    };
    let err = client.exchange_code(&other, &code).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_tokens_refresh_on_read_one_at_a_time_and_need_reconnecting_when_refused() {
    use identity_core::{CredentialRef, CredentialStore, RequestContext, ResourceKind};
    use identity_oauth::{DelegatedTokenStore, MemoryTokens, Provider};
    use std::sync::Arc;

    let server = AuthorizationServer::start().await;
    let client = code_client(&server).await;
    let (pending, query) = authorize(&server, &client, "alice").await;
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let connected = client.exchange_code(&pending, &code).await.unwrap();

    // Tokens live 600 s here; a one-hour window makes every read refresh.
    let store = DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
        .refresh_window(std::time::Duration::from_secs(3600))
        .provider(
            CredentialRef::new("user-idp").unwrap(),
            Provider::with_client("idp", client.clone()),
        );
    store.connect("alice", "idp", &connected).await.unwrap();
    let alice = RequestContext::builder()
        .user_id("alice")
        .resource_id("repo")
        .resource_kind(ResourceKind::Personal)
        .provider("idp")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap();
    let slot = CredentialRef::new("user-idp").unwrap();
    let reads = (0..10).map(|_| store.find_by_ref(&slot, &alice));
    let results = futures::future::join_all(reads).await;
    let tokens: Vec<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .secret
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    assert_ne!(
        tokens[0],
        connected.access_token.expose_secret(),
        "refreshed on read"
    );
    // Ten concurrent readers, each within the window: the refreshes ran one at a time, each on
    // the refresh token the previous one saved. Had two spent the same rotating refresh token,
    // the server's reuse detection would have revoked the grant and the later ones failed.
    assert!(tokens.iter().all(|t| !t.is_empty()));
    let last = tokens.last().unwrap();
    assert_eq!(server.introspect(last).await["active"], true);
    let credential = results[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        credential.kind,
        identity_core::CredentialKind::UserDelegated
    );
    assert!(credential.expires_at.is_some());

    // The provider's API refuses the token: the next read refreshes; a later report of the same,
    // now stale, token leaves the fresh one alone.
    let refused = identity_core::Secret::new(last.clone());
    store.forget_refused(&slot, &alice, &refused).await.unwrap();
    async fn read(
        store: &DelegatedTokenStore,
        slot: &CredentialRef,
        ctx: &RequestContext,
    ) -> String {
        let credential = store.find_by_ref(slot, ctx).await.unwrap().unwrap();
        credential.secret.unwrap().expose_secret().to_owned()
    }
    let fresh = read(&store, &slot, &alice).await;
    assert_ne!(&fresh, last, "a refused token is not handed out again");
    assert_eq!(server.introspect(&fresh).await["active"], true);
    let no_refresh = DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
        .provider(slot.clone(), Provider::with_client("idp", client.clone()));
    let mut without_refresh_token = connected.clone();
    without_refresh_token.refresh_token = None;
    no_refresh
        .connect("alice", "idp", &without_refresh_token)
        .await
        .unwrap();
    let stale = identity_core::Secret::new("an-older-token");
    no_refresh
        .forget_refused(&slot, &alice, &stale)
        .await
        .unwrap();
    assert_eq!(
        read(&no_refresh, &slot, &alice).await,
        connected.access_token.expose_secret(),
        "a stale report forgets nothing"
    );
    // Refused with no refresh token: the user must connect again.
    no_refresh
        .forget_refused(&slot, &alice, &connected.access_token)
        .await
        .unwrap();
    let err = no_refresh.find_by_ref(&slot, &alice).await.unwrap_err();
    assert!(
        matches!(&err, Error::ConsentRequired { provider, .. } if provider == "idp"),
        "{err:?}"
    );

    // Bob never connected: his consent is needed.
    let bob = RequestContext::builder()
        .user_id("bob")
        .resource_id("repo")
        .resource_kind(ResourceKind::Personal)
        .provider("idp")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap();
    let err = store.find_by_ref(&slot, &bob).await.unwrap_err();
    assert!(
        matches!(&err, Error::ConsentRequired { detail, .. } if detail.contains("bob has not connected")),
        "{err:?}"
    );

    // The grant is revoked at the provider: the next refresh is refused, "connect again".
    let (pending, query) = authorize(&server, &client, "alice").await;
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let second = client.exchange_code(&pending, &code).await.unwrap();
    store.connect("alice", "idp", &second).await.unwrap();
    client.revoke(&second).await.unwrap();
    let err = store.find_by_ref(&slot, &alice).await.unwrap_err();
    assert!(
        matches!(&err, Error::ConsentRequired { detail, .. } if detail.contains("must be made again")),
        "{err:?}"
    );

    // Disconnecting revokes (the server has a revocation endpoint), then forgets.
    assert!(store.disconnect("alice", "idp").await.unwrap());
    assert!(matches!(
        store.find_by_ref(&slot, &alice).await,
        Err(Error::ConsentRequired { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_token_must_carry_the_flows_nonce_and_iss_is_required_where_advertised() {
    let server = AuthorizationServer::start().await;
    let client = code_client(&server).await;
    // oidc-provider says it sends `iss` in every authorization response (RFC 9207).
    assert!(
        client
            .server()
            .authorization_response_iss_parameter_supported
    );
    let (pending, query) = authorize(&server, &client, "alice").await;
    assert!(pending.openid && pending.iss_required);
    let without_iss: Vec<(String, String)> =
        query.iter().filter(|(k, _)| k != "iss").cloned().collect();
    let err = identity_oauth::check_callback(&pending, &pairs(&without_iss)).unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_issuer"),
        "{err:?}"
    );

    // The real ID token, checked against a flow that sent another nonce: refused, and nothing
    // of the answer is kept.
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let other_flow = PendingAuthorization {
        nonce: Secret::new("another-flows-nonce"),
        ..pending.clone()
    };
    let err = client.exchange_code(&other_flow, &code).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_id_token"),
        "{err:?}"
    );

    // The same flow with its own nonce verifies the ID token oidc-provider signed (its JWKS).
    let (pending, query) = authorize(&server, &client, "alice").await;
    let code = identity_oauth::check_callback(&pending, &pairs(&query)).unwrap();
    let tokens = client.exchange_code(&pending, &code).await.unwrap();
    assert!(tokens.id_token.is_some());
}
