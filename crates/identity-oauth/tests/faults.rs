//! What a real authorization server will not do on demand, against a few lines of axum standing
//! in for one: a refresh slow enough that the caller gives up while it is in flight, a refresh
//! token refused for good, ID tokens forged or bound to another nonce, and GitHub as GitHub
//! documents it (the real one cannot be reached here). Everything else is tested against
//! oidc-provider (`tests/oidc_provider.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use identity_core::{
    CredentialRef, CredentialStore, Error, OffsetDateTime, RequestContext, ResourceKind, Secret,
};
use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
use identity_oauth::{
    DelegatedTokenStore, MemoryTokens, OAuthClient, PendingAuthorization, Pkce, Provider, TokenSet,
};

/// A fake authorization server's state: the one live refresh token of the family, and counts.
#[derive(Default)]
struct Server {
    live_refresh: Mutex<String>,
    generation: AtomicUsize,
    refreshes: AtomicUsize,
    invalid_grants: AtomicUsize,
    /// What the token endpoint answers a code with.
    id_token: Mutex<String>,
    /// Refresh takes this long (a slow provider).
    delay: Mutex<Duration>,
    /// Every refresh is refused.
    refuse_all: std::sync::atomic::AtomicBool,
}

async fn token(
    State(server): State<Arc<Server>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    match get("grant_type").as_str() {
        "refresh_token" => {
            server.refreshes.fetch_add(1, Ordering::SeqCst);
            let delay = *server.delay.lock().unwrap();
            let presented = get("refresh_token");
            let fresh = {
                let mut live = server.live_refresh.lock().unwrap();
                if server.refuse_all.load(Ordering::SeqCst) || *live != presented {
                    // Reuse detection: a spent refresh token revokes the family.
                    live.clear();
                    None
                } else {
                    let generation = server.generation.fetch_add(1, Ordering::SeqCst) + 1;
                    *live = format!("r{}", generation + 1);
                    Some((format!("a{generation}"), live.clone()))
                }
            };
            let Some((access, refresh)) = fresh else {
                server.invalid_grants.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant"}"#).into_response();
            };
            // Rotated already: a caller that gives up now leaves the only good token here.
            tokio::time::sleep(delay).await;
            axum::Json(serde_json::json!({
                "access_token": access, "refresh_token": refresh,
                "token_type": "Bearer", "expires_in": 3600,
            }))
            .into_response()
        }
        "authorization_code" => axum::Json(serde_json::json!({
            "access_token": "code-access", "token_type": "Bearer", "expires_in": 3600,
            "id_token": server.id_token.lock().unwrap().clone(),
        }))
        .into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported_grant_type"}"#,
        )
            .into_response(),
    }
}

/// The signing key the fake issuer publishes (kid `a`), and one it does not.
fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwks() -> serde_json::Value {
    let public = key(1).verifying_key();
    serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "a", "alg": "EdDSA", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(public.as_bytes()),
    }]})
}

/// Starts the fake issuer; its metadata and an OAuth client of it.
async fn start() -> (Arc<Server>, OAuthClient) {
    let server = Arc::new(Server::default());
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/jwks", axum::routing::get(|| async { axum::Json(jwks()) }))
        .with_state(Arc::clone(&server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let policy = OutboundPolicy::default().allow_http_loopback(true);
    let metadata = AuthorizationServerMetadata::from_json(
        serde_json::json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
        }),
        &issuer,
        &policy,
    )
    .unwrap();
    let client = OAuthClient::new(
        HttpClient::new(policy).unwrap(),
        metadata,
        ClientCredentials::basic("web-app", Secret::new("web-app-secret")),
    );
    (server, client)
}

fn context(user: &str) -> RequestContext {
    RequestContext::builder()
        .user_id(user)
        .resource_id("repo")
        .resource_kind(ResourceKind::Personal)
        .provider("idp")
        .model("m")
        .action("read")
        .trace_id("t")
        .build()
        .unwrap()
}

async fn connected_store(client: OAuthClient, refresh: &str) -> DelegatedTokenStore {
    let store = DelegatedTokenStore::new(Arc::new(MemoryTokens::default())).provider(
        CredentialRef::new("user-idp").unwrap(),
        Provider::with_client("idp", client),
    );
    let mut tokens = TokenSet::bearer(
        Secret::new("a0"),
        Some(OffsetDateTime::now_utc() - time::Duration::seconds(10)),
    );
    tokens.refresh_token = Some(Secret::new(refresh));
    store.connect("alice", "idp", &tokens).await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_mid_refresh_does_not_lose_the_rotated_token() {
    let (server, client) = start().await;
    *server.live_refresh.lock().unwrap() = "r1".into();
    *server.delay.lock().unwrap() = Duration::from_millis(400);
    let store = connected_store(client, "r1").await;
    let slot = CredentialRef::new("user-idp").unwrap();

    // The request times out (or its client disconnects) while the provider has rotated the
    // refresh token and not yet answered.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        store.find_by_ref(&slot, &context("alice")),
    )
    .await;
    assert!(gave_up.is_err(), "the refresh should still be in flight");
    tokio::time::sleep(Duration::from_millis(800)).await;

    let credential = store
        .find_by_ref(&slot, &context("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credential.secret.unwrap().expose_secret(), "a1");
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(server.invalid_grants.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_invalid_grant_no_resolution_calls_the_provider_again() {
    let (server, client) = start().await;
    server.refuse_all.store(true, Ordering::SeqCst);
    let store = connected_store(client, "r-dead").await;
    let slot = CredentialRef::new("user-idp").unwrap();
    for _ in 0..101 {
        let err = store
            .find_by_ref(&slot, &context("alice"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::ConsentRequired { detail, .. } if detail.contains("must be made again")),
            "{err:?}"
        );
    }
    // The first resolution spent one call; the next hundred none.
    assert_eq!(server.refreshes.load(Ordering::SeqCst), 1);
}

fn id_token(signer: &SigningKey, kid: &str, claims: serde_json::Value) -> String {
    let der = signer.to_pkcs8_der().unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn pending(client: &OAuthClient, nonce: &str) -> PendingAuthorization {
    PendingAuthorization {
        issuer: client.server().issuer.clone(),
        state: Secret::new("s"),
        nonce: Secret::new(nonce),
        pkce: Pkce::generate().unwrap(),
        redirect_uri: "http://127.0.0.1:1/cb".into(),
        resources: Vec::new(),
        openid: true,
        iss_required: false,
    }
}

#[tokio::test]
async fn id_tokens_are_verified_signature_issuer_audience_expiry_and_nonce() {
    let (server, client) = start().await;
    let issuer = client.server().issuer.clone();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = |nonce: &str, aud: &str, iss: &str, exp: i64| serde_json::json!({"iss": iss, "sub": "alice", "aud": aud, "exp": exp, "iat": now, "nonce": nonce});
    let code = Secret::new("c");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("n1", "web-app", &issuer, now + 300),
        &jsonwebtoken::EncodingKey::from_secret(b"web-app-secret"),
    )
    .unwrap();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims("n1", "web-app", &issuer, now + 300).to_string())
    );
    let refused = [
        // Signed by a key the issuer does not publish, under its key id.
        id_token(&key(2), "a", claims("n1", "web-app", &issuer, now + 300)),
        // Another nonce (a token of another flow, replayed).
        id_token(&key(1), "a", claims("other", "web-app", &issuer, now + 300)),
        id_token(
            &key(1),
            "a",
            claims("n1", "another-client", &issuer, now + 300),
        ),
        id_token(
            &key(1),
            "a",
            claims("n1", "web-app", "https://evil.example.com", now + 300),
        ),
        id_token(&key(1), "a", claims("n1", "web-app", &issuer, now - 3600)),
        id_token(
            &key(1),
            "unknown-kid",
            claims("n1", "web-app", &issuer, now + 300),
        ),
        hs256,
        unsigned,
    ];
    for forged in refused {
        *server.id_token.lock().unwrap() = forged.clone();
        let err = client
            .exchange_code(&pending(&client, "n1"), &code)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Protocol { code, .. } if code == "invalid_id_token"),
            "{forged}: {err:?}"
        );
    }
    // The genuine one passes.
    *server.id_token.lock().unwrap() =
        id_token(&key(1), "a", claims("n1", "web-app", &issuer, now + 300));
    let tokens = client
        .exchange_code(&pending(&client, "n1"), &code)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "code-access");
}

/// GitHub as its documentation says it answers: a 200 that carries `error` for a refused code,
/// `bad_verification_code`, `GET /user`, `DELETE /applications/{client_id}/token` with the
/// app's own Basic credentials.
#[derive(Default)]
struct GitHub {
    deleted: AtomicUsize,
}

async fn github_token(headers: HeaderMap, Form(form): Form<Vec<(String, String)>>) -> Response {
    let code = form
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let json = headers
        .get("accept")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let authenticated = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    if !json || !authenticated {
        return (StatusCode::OK, "error=unsupported").into_response();
    }
    if code == "good-code" {
        axum::Json(serde_json::json!({"access_token": "gho_good", "token_type": "bearer", "scope": "read:user"}))
            .into_response()
    } else {
        axum::Json(serde_json::json!({"error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/troubleshooting"}))
        .into_response()
    }
}

#[tokio::test]
async fn the_github_preset_speaks_githubs_dialect() {
    let state = Arc::new(GitHub::default());
    let deleted = Arc::clone(&state);
    let app = axum::Router::new()
        .route("/login/oauth/access_token", axum::routing::post(github_token))
        .route(
            "/api/user",
            axum::routing::get(|headers: HeaderMap| async move {
                match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                    Some("Bearer gho_good") => axum::Json(serde_json::json!({
                        "id": 583231, "login": "octocat", "avatar_url": "https://avatars.example/u/583231"}))
                    .into_response(),
                    _ => (StatusCode::UNAUTHORIZED, r#"{"message":"Bad credentials"}"#).into_response(),
                }
            }),
        )
        .route(
            "/api/applications/{client_id}/token",
            axum::routing::delete(
                move |axum::extract::Path(client_id): axum::extract::Path<String>,
                      headers: HeaderMap,
                      body: String| async move {
                    let basic = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let expected = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode("Iv1.test:gh-secret")
                    );
                    if client_id != "Iv1.test" || basic != expected || !body.contains("gho_good") {
                        return StatusCode::NOT_FOUND.into_response();
                    }
                    deleted.deleted.fetch_add(1, Ordering::SeqCst);
                    StatusCode::NO_CONTENT.into_response()
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let github = Provider::github_at(
        "Iv1.test",
        Secret::new("gh-secret"),
        web.parse().unwrap(),
        format!("{web}/api").parse().unwrap(),
        OutboundPolicy::default().allow_http_loopback(true),
    )
    .unwrap();

    let (url, pending) = github
        .authorize("http://127.0.0.1:1/oauth/github/callback", None)
        .await
        .unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{web}/login/oauth/authorize?"))
    );
    let client = github.client().await.unwrap();
    // A refused code: a 200 that carries `error`, GitHub's name for `invalid_grant`.
    let err = client
        .exchange_code(&pending, &Secret::new("stale-code"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_grant"),
        "{err:?}"
    );
    let tokens = client
        .exchange_code(&pending, &Secret::new("good-code"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "gho_good");
    assert_eq!(tokens.scope.as_deref(), Some("read:user"));
    let account = github.account(&tokens).await.unwrap().unwrap();
    assert_eq!(
        (account.id.as_deref(), account.login.as_deref()),
        (Some("583231"), Some("octocat"))
    );
    let stranger = TokenSet::bearer(Secret::new("gho_other"), None);
    assert!(matches!(
        github.account(&stranger).await.unwrap_err(),
        Error::Unauthenticated { .. }
    ));
    assert!(github.revoke(&tokens).await.unwrap());
    assert_eq!(state.deleted.load(Ordering::SeqCst), 1);
}
