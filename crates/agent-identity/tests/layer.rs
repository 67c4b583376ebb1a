//! The resolution layer inside a small axum app: through `oneshot`, and through a real socket.
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;

use agent_identity::layer::{ResolveLayer, Resolved, ResolvedContext};
use agent_identity::{
    Credential, CredentialKind, MemoryCredentialStore, RequestContext, ResourceKind, Router,
    RoutingRule, Secret,
};
use axum::body::Body;
use axum::extract::Extension;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SECRET: &str = "sk-layer-canary-91c2";

/// The application's own notion of the caller: a header its authentication set.
fn context(parts: &http::request::Parts) -> Result<RequestContext, (StatusCode, &'static str)> {
    let Some(user) = parts.headers.get("x-user").and_then(|v| v.to_str().ok()) else {
        return Err((StatusCode::UNAUTHORIZED, "who are you?"));
    };
    Ok(RequestContext::builder()
        .user_id(user)
        .resource_id(parts.uri.path().trim_start_matches('/'))
        .resource_kind(ResourceKind::Personal)
        .provider("github")
        .model("gpt-4o")
        .action(if parts.method == http::Method::GET {
            "read"
        } else {
            "write"
        })
        .trace_id("trace-layer")
        .build()
        .expect("every field is set"))
}

async fn handler(
    Resolved(resolution): Resolved,
    Extension(ResolvedContext(ctx)): Extension<ResolvedContext>,
) -> String {
    // A handler would send the secret downstream; the test only proves it is there.
    assert_eq!(resolution.secret().unwrap().expose_secret(), SECRET);
    format!(
        "{} for {} on {}",
        resolution.credential_id, resolution.resolved_for, ctx.resource_id
    )
}

fn app() -> axum::Router {
    let store = MemoryCredentialStore::new();
    store.insert(
        Credential::new("alice-github", CredentialKind::UserDelegated, "alice-gh")
            .unwrap()
            .with_secret(Secret::new(SECRET)),
    );
    let router = Router::builder()
        .default_store(store)
        .rule(
            RoutingRule::new("alice-reads", "alice-gh")
                .with_priority(1)
                .with_match_user_id("alice")
                .with_match_action(["read"]),
        )
        .build()
        .unwrap();
    axum::Router::new()
        .route("/{repo}", axum::routing::get(handler).post(handler))
        .layer(ResolveLayer::new(Arc::new(router), context))
}

async fn call(
    app: axum::Router,
    method: &str,
    user: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder().method(method).uri("/repo-1");
    if let Some(user) = user {
        request = request.header("x-user", user);
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), cache)
}

#[tokio::test]
async fn a_granted_request_reaches_the_handler_with_its_credential() {
    let (status, body, cache) = call(app(), "GET", Some("alice")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "alice-github for alice on repo-1");
    assert_eq!(cache.as_deref(), Some("no-store"));
}

#[tokio::test]
async fn a_denied_request_gets_a_403_json_answer_and_never_reaches_the_handler() {
    for (method, user, code) in [
        ("GET", "bob", "no_matching_rule"),
        ("POST", "alice", "no_matching_rule"),
    ] {
        let (status, body, cache) = call(app(), method, Some(user)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["code"], code);
        assert!(json["error"].is_string());
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert!(!body.contains(SECRET));
    }
}

#[tokio::test]
async fn the_extractors_rejection_is_the_answer() {
    let (status, body, _) = call(app(), "GET", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, "who are you?");
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_without_detail() {
    let app = axum::Router::new().route(
        "/x",
        axum::routing::get(|Resolved(r): Resolved| async move { r.credential_id }),
    );
    let response = app
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&body).contains("layer"));
}

#[tokio::test]
async fn the_layer_works_over_a_real_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    for (user, expected) in [("alice", "200 OK"), ("bob", "403 Forbidden")] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET /repo-1 HTTP/1.1\r\nHost: {address}\r\nx-user: {user}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {expected}")),
            "{response}"
        );
        assert!(!response.contains(SECRET));
        if user == "alice" {
            assert!(
                response.ends_with("alice-github for alice on repo-1"),
                "{response}"
            );
        }
    }
    server.abort();
}
