//! End to end: a caller authenticated by a JWT resolves a credential that the sidecar obtains by
//! exchanging that same JWT (RFC 8693) at the authorization server that issued it
//! (oidc-provider, `fixtures/oidc-provider`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::Arc;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::load_str;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use identity_test_support::{AuthorizationServer, CLIENT_SECRET, ed25519_key_pair};
use serde_json::{Value, json};
use tower::ServiceExt;

fn config(issuer: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:3001"

[stores.exchange]
type = "token-exchange"

[[stores.exchange.slots]]
ref = "crm-token"
name = "CRM, as the caller"
token_endpoint = "{issuer}/token"
allow_http_loopback = true
client_id = "agent-identity"
client_secret_env = "CRM_CLIENT_SECRET"
audience = ["https://crm.example.com"]
scopes = ["crm:read"]

[[rules]]
id = "crm"
credentialRef = "crm-token"
credentialKind = "user-delegated"
store = "exchange"
priority = 1

[auth]
mode = "jwt"

[auth.jwt]
issuer = "{issuer}"
audience = ["agent-identity"]
jwks_url = "{issuer}/jwks"
allow_http_loopback = true
"#
    )
}

/// The sidecar, configured against `server`, in process.
async fn sidecar(server: &AuthorizationServer) -> axum::Router {
    let env = |name: &str| (name == "CRM_CLIENT_SECRET").then(|| CLIENT_SECRET.to_owned());
    let loaded = load_str(
        &config(server.issuer()),
        Path::new("."),
        "test".into(),
        &env,
        None,
    )
    .unwrap();
    let bound = "127.0.0.1:3001".parse().unwrap();
    app(loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap())
}

async fn resolve(app: &axum::Router, user: &str, bearer: Option<&str>) -> (StatusCode, Value) {
    let body = json!({"userId": user, "resourceId": "crm", "resourceKind": "shared",
                      "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t"});
    let mut request = Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn the_callers_jwt_is_exchanged_for_the_downstream_token() {
    let server = AuthorizationServer::start().await;
    let app = sidecar(&server).await;

    let alice = server
        .jwt_access_token("alice", "crm:read crm:write", "agent-identity")
        .await;
    let (status, body) = resolve(&app, "alice", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentialId"], "crm-token");
    assert_eq!(body["resolvedFor"], "alice");
    assert!(body["expiresAt"].is_string(), "{body}");
    assert!(
        !body.to_string().contains(&alice),
        "the caller's token is echoed"
    );
    assert_eq!(server.exchanges().await, 1);

    // Cached for alice: no second exchange.
    assert_eq!(resolve(&app, "alice", Some(&alice)).await.0, StatusCode::OK);
    assert_eq!(server.exchanges().await, 1);

    // Bob's token cannot resolve as alice, and makes no exchange.
    let bob = server
        .jwt_access_token("bob", "crm:read", "agent-identity")
        .await;
    let (status, body) = resolve(&app, "alice", Some(&bob)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("caller_user_mismatch"))
    );
    assert_eq!(server.exchanges().await, 1);

    // As himself, bob gets his own exchange.
    let (status, body) = resolve(&app, "bob", Some(&bob)).await;
    assert_eq!(
        (status, body["resolvedFor"].as_str()),
        (StatusCode::OK, Some("bob"))
    );
    assert_eq!(server.exchanges().await, 2);

    // No token: no caller, no exchange.
    assert_eq!(
        resolve(&app, "alice", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.exchanges().await, 2);
}

#[tokio::test]
async fn a_caller_whose_token_cannot_be_exchanged_is_denied_with_the_servers_code() {
    let server = AuthorizationServer::start().await;
    let app = sidecar(&server).await;
    // Carol holds no CRM scope: the server refuses the down-scoped exchange.
    let carol = server
        .jwt_access_token("carol", "erp:read", "agent-identity")
        .await;
    let (status, body) = resolve(&app, "carol", Some(&carol)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "store_refused");
    assert!(
        body["error"].as_str().unwrap().contains("invalid_scope"),
        "{body}"
    );
}

#[test]
fn a_missing_client_secret_is_a_configuration_error() {
    let err = load_str(
        &config("https://issuer.example"),
        Path::new("."),
        "test".into(),
        &|_| None,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("CRM_CLIENT_SECRET"), "{err}");
}

#[tokio::test]
async fn a_client_with_no_secret_exchanges_with_a_signed_assertion() {
    let (pem, jwk) = ed25519_key_pair(11);
    let server = AuthorizationServer::start_with_client_key(&jwk).await;
    let dir = std::env::temp_dir().join(format!("agent-identity-pkjwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("agent.pem"), &pem).unwrap();
    let config = config(server.issuer()).replace(
        "client_id = \"agent-identity\"\nclient_secret_env = \"CRM_CLIENT_SECRET\"",
        "client_id = \"agent-identity-jwt\"\nclient_auth = \"private_key_jwt\"\nprivate_key = { file = \"agent.pem\", algorithm = \"EdDSA\", key_id = \"agent-key-1\" }",
    );
    assert!(config.contains("private_key_jwt"));
    let load = |config: &str| load_str(config, &dir, "test".into(), &|_| None, None);
    let bound = "127.0.0.1:3001".parse().unwrap();
    let signed = app(load(&config)
        .unwrap()
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap());
    let alice = server
        .jwt_access_token("alice", "crm:read", "agent-identity")
        .await;
    let (status, body) = resolve(&signed, "alice", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentialId"], "crm-token");
    assert_eq!(server.exchanges().await, 1);

    // Signed with another key, the same client is refused by the server.
    let (other, _) = ed25519_key_pair(12);
    std::fs::write(dir.join("other.pem"), &other).unwrap();
    let wrong_key = app(load(&config.replace("agent.pem", "other.pem"))
        .unwrap()
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap());
    let bob = server
        .jwt_access_token("bob", "crm:read", "agent-identity")
        .await;
    let (status, body) = resolve(&wrong_key, "bob", Some(&bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.to_string().contains("invalid_client"), "{body}");

    // A key file that is missing or not a key is refused at load, naming the field.
    let err = load(&config.replace("agent.pem", "absent.pem")).unwrap_err();
    assert!(
        err.to_string().contains("slots[0].private_key.file"),
        "{err}"
    );
    std::fs::write(dir.join("garbage.pem"), "not a key").unwrap();
    let err = load(&config.replace("agent.pem", "garbage.pem")).unwrap_err();
    assert!(
        err.to_string().contains("slots[0].private_key.file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An upstream of this test that keeps every bearer token it was sent. With `Refuse::First` it
/// refuses the first token it sees (as a service does with a token revoked behind the cache's
/// back) and accepts any other; with `Refuse::All`, every one; with `Refuse::None`, none.
async fn refusing_upstream(refuse: Refuse) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::response::IntoResponse;
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |headers: http::HeaderMap| {
        let kept = kept.clone();
        async move {
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let mut kept = kept.lock().unwrap();
            kept.push(token.clone());
            let refused = match refuse {
                Refuse::None => false,
                Refuse::First => kept[0] == token,
                Refuse::All => true,
            };
            if refused {
                StatusCode::UNAUTHORIZED.into_response()
            } else {
                axum::Json(json!({"ok": true})).into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

#[derive(Clone, Copy)]
enum Refuse {
    None,
    First,
    All,
}

async fn proxied(server: &AuthorizationServer, base: &str, token: &str, user: &str) -> StatusCode {
    let text = format!(
        "{}\n[upstreams.crm]\nbase_url = \"{base}\"\nprovider = \"openai\"\nallow_http_loopback = true\n",
        config(server.issuer())
    );
    let env = |name: &str| (name == "CRM_CLIENT_SECRET").then(|| CLIENT_SECRET.to_owned());
    let loaded = load_str(&text, Path::new("."), "test".into(), &env, None).unwrap();
    let app = app(loaded
        .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap());
    let request = Request::post("/proxy/crm/items")
        .header("host", "127.0.0.1:3001")
        .header("authorization", format!("Bearer {token}"))
        .header("x-agent-identity-user", user)
        .header("content-type", "application/json")
        .body(Body::from("{\"name\":\"x\"}"))
        .unwrap();
    app.oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn a_401_from_the_upstream_costs_exactly_one_fresh_exchange_and_one_retry() {
    let server = AuthorizationServer::start().await;
    let alice = server
        .jwt_access_token("alice", "crm:read crm:write", "agent-identity")
        .await;
    let (base, seen) = refusing_upstream(Refuse::First).await;
    assert_eq!(
        proxied(&server, &base, &alice, "alice").await,
        StatusCode::OK
    );
    assert_eq!(server.exchanges().await, 2);
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_ne!(tokens[0], tokens[1]);
    assert!(
        tokens.iter().all(|t| !t.contains(&alice)),
        "the caller's own token reached the upstream"
    );

    // An upstream that refuses every token: one retry, then its 401 stands.
    let (base, seen) = refusing_upstream(Refuse::All).await;
    assert_eq!(
        proxied(&server, &base, &alice, "alice").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(server.exchanges().await, 4);
}

#[tokio::test]
async fn two_users_through_one_upstream_each_get_a_token_of_their_own() {
    let server = AuthorizationServer::start().await;
    let (base, seen) = refusing_upstream(Refuse::None).await;
    let alice = server
        .jwt_access_token("alice", "crm:read", "agent-identity")
        .await;
    let bob = server
        .jwt_access_token("bob", "crm:read", "agent-identity")
        .await;
    assert_eq!(
        proxied(&server, &base, &alice, "alice").await,
        StatusCode::OK
    );
    assert_eq!(proxied(&server, &base, &bob, "bob").await, StatusCode::OK);
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1], "both users were sent the same token");
    let subjects: Vec<Value> = tokens
        .iter()
        .map(|t| server.introspect(t.trim_start_matches("Bearer ")))
        .collect::<futures::future::JoinAll<_>>()
        .await;
    assert_eq!(subjects[0]["sub"], "alice", "{subjects:?}");
    assert_eq!(subjects[1]["sub"], "bob", "{subjects:?}");
    // Bob's own JWT may not be used to act for alice.
    assert_eq!(
        proxied(&server, &base, &bob, "alice").await,
        StatusCode::FORBIDDEN
    );
}

/// A JWT-SVID of `spiffe://prod.example/agent`, signed with the key of seed `seed`, for the
/// sidecar and for the authorization server at `issuer` (both are its audience).
fn jwt_svid(seed: u8, issuer: &str) -> String {
    let (pem, _) = ed25519_key_pair(seed);
    let key = jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(identity_test_support::CLIENT_KEY_ID.into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": "spiffe://prod.example/agent", "aud": ["agent-identity", issuer],
                        "iat": now, "exp": now + 300});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn the_calling_workloads_jwt_svid_is_the_actor_of_the_exchange() {
    // The trust domain's bundle: the authorization server and the sidecar both trust it.
    let (_, jwk) = ed25519_key_pair(41);
    let bundle = format!("{{\"keys\":[{jwk}]}}");
    let server = AuthorizationServer::start_with_env(&[("FIXTURE_SPIFFE_JWKS", &bundle)]).await;
    let dir = std::env::temp_dir().join(format!("agent-identity-actor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bundle.json"), &bundle).unwrap();
    let (base, seen) = refusing_upstream(Refuse::None).await;
    let text = format!(
        "{}\n[auth.workload_jwt]\ntrust_domain = \"prod.example\"\naudience = [\"agent-identity\"]\njwks_file = \"bundle.json\"\n\n[upstreams.crm]\nbase_url = \"{base}\"\nprovider = \"openai\"\nallow_http_loopback = true\n",
        config(server.issuer()).replace(
            "scopes = [\"crm:read\"]\n",
            "scopes = [\"crm:read\"]\nactor_is_caller = true\n"
        )
    );
    let env = |name: &str| (name == "CRM_CLIENT_SECRET").then(|| CLIENT_SECRET.to_owned());
    let loaded = load_str(&text, &dir, "test".into(), &env, None).unwrap();
    let app = app(loaded
        .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap());
    let alice = server
        .jwt_access_token("alice", "crm:read", "agent-identity")
        .await;
    let call = |workload_token: Option<String>| {
        let mut request = Request::post("/proxy/crm/items")
            .header("host", "127.0.0.1:3001")
            .header("authorization", format!("Bearer {alice}"))
            .header("x-agent-identity-user", "alice")
            .header("content-type", "application/json");
        if let Some(token) = workload_token {
            request = request.header("x-agent-identity-workload-token", token);
        }
        let app = app.clone();
        async move {
            let response = app
                .oneshot(request.body(Body::from("{}")).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };

    // Alice's agent, proving its workload: the upstream gets a token for alice whose actor is
    // the agent, and neither the SVID nor alice's token reaches it.
    let svid = jwt_svid(41, server.issuer());
    let (status, body) = call(Some(svid.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = seen.lock().unwrap()[0].clone();
    assert!(!sent.contains(&svid) && !sent.contains(&alice));
    let issued = server.introspect(sent.trim_start_matches("Bearer ")).await;
    assert_eq!(issued["sub"], "alice", "{issued}");
    assert_eq!(
        issued["act"]["sub"], "spiffe://prod.example/agent",
        "{issued}"
    );

    // Without its workload token the slot does not exchange (no actor, no delegation).
    let exchanges = server.exchanges().await;
    let (status, body) = call(None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("JWT-SVID"), "{body}");
    assert_eq!(server.exchanges().await, exchanges);
    // A workload token signed by a key outside the bundle is refused before anything else.
    let (status, body) = call(Some(jwt_svid(42, server.issuer()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("workload token"), "{body}");
    // The proven workload binds the request: a body naming another is refused.
    let body = json!({"userId": "alice", "resourceId": "crm", "resourceKind": "shared",
        "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t",
        "spiffeId": "spiffe://prod.example/payroll"});
    let request = Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .header("authorization", format!("Bearer {alice}"))
        .header("x-agent-identity-workload-token", svid)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let refused: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(refused["code"], "caller_workload_mismatch");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
