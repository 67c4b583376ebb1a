//! What a real authorization server will not do on demand: a 503 then a success, a 429 with
//! `Retry-After`, a hang past the timeout, a body that is not JSON, a huge body, a redirect.
//! A few lines of axum stand in for the token endpoint here; everything else is tested against
//! oidc-provider (`tests/store.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use identity_core::{
    CredentialRef, CredentialStore, Error, RequestContext, ResourceKind, Secret, SubjectToken,
};
use identity_token_exchange::{
    ClientAuth, ExchangeConfig, TokenExchangeStore, TokenExchangeStoreBuilder,
};

const GOOD: &str = r#"{"access_token":"issued","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":600}"#;

/// A token endpoint that answers call N with `script(N)`.
async fn endpoint(script: fn(usize) -> Response) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { script(n) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/token"), calls)
}

fn store(
    url: &str,
    tune: impl FnOnce(TokenExchangeStoreBuilder) -> TokenExchangeStoreBuilder,
) -> TokenExchangeStore {
    let config = ExchangeConfig::builder("slot", "agent")
        .token_endpoint(url)
        .allow_http_loopback(true)
        .client_auth(ClientAuth::None)
        .build()
        .unwrap();
    tune(
        TokenExchangeStore::builder()
            .config(config)
            .backoff(Duration::from_millis(20)),
    )
    .build()
    .unwrap()
}

async fn find(store: &TokenExchangeStore) -> Result<Option<identity_core::Credential>, Error> {
    let ctx = RequestContext::builder()
        .user_id("u")
        .resource_id("r")
        .resource_kind(ResourceKind::Shared)
        .provider("p")
        .model("m")
        .action("a")
        .trace_id("t")
        .subject_token(SubjectToken::new(Secret::new("subject")))
        .build()
        .unwrap();
    store
        .find_by_ref(&CredentialRef::new("slot").unwrap(), &ctx)
        .await
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

#[tokio::test]
async fn a_503_is_retried_and_the_success_served() {
    let (url, calls) = endpoint(|n| {
        if n == 1 {
            json(StatusCode::SERVICE_UNAVAILABLE, "{}")
        } else {
            json(StatusCode::OK, GOOD)
        }
    })
    .await;
    let credential = find(&store(&url, |b| b)).await.unwrap().unwrap();
    assert_eq!(credential.secret.unwrap().expose_secret(), "issued");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let (url, calls) = endpoint(|n| {
        if n == 1 {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", "1".parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, headers, "").into_response()
        } else {
            json(StatusCode::OK, GOOD)
        }
    })
    .await;
    let started = Instant::now();
    assert!(find(&store(&url, |b| b)).await.unwrap().is_some());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retries_are_bounded_and_end_in_a_retryable_error() {
    let (url, calls) = endpoint(|_| json(StatusCode::BAD_GATEWAY, "")).await;
    let err = find(&store(&url, |b| b.attempts(3))).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_a_retryable_error_in_time() {
    // A handler that never answers in time (it awaits, so the runtime stays free for the client).
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            json(StatusCode::OK, GOOD)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let started = Instant::now();
    let err = find(&store(&url, |b| {
        b.timeout(Duration::from_millis(300)).attempts(1)
    }))
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        // (the handler hangs 30 s: ten leaves the loaded machine its slack)
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_not_retried() {
    let (url, calls) =
        endpoint(|_| (StatusCode::OK, "<html>maintenance</html>").into_response()).await;
    let err = find(&store(&url, |b| b)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "invalid_response"),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_huge_body_is_refused_without_reading_it_all() {
    let (url, _) =
        endpoint(|_| (StatusCode::OK, vec![b' '; 8 * 1024 * 1024]).into_response()).await;
    let err = find(&store(&url, |b| b)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "response_too_large"),
        "{err}"
    );
    assert!(
        err.to_string().contains("larger than 262144 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (url, calls) = endpoint(|_| {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", "http://127.0.0.1:9/steal")],
            "",
        )
            .into_response()
    })
    .await;
    let err = find(&store(&url, |b| b)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "redirect_refused"),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_403_refusal_is_a_refusal_and_is_not_retried() {
    let (url, calls) = endpoint(|_| {
        json(
            StatusCode::FORBIDDEN,
            r#"{"error":"insufficient_scope","error_description":"the subject may not"}"#,
        )
    })
    .await;
    let err = find(&store(&url, |b| b)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "insufficient_scope"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_discovered_token_endpoint_inside_the_network_is_never_called() {
    // 127.0.0.2 stands for an internal host; a listener there counts what reaches it.
    let (internal, reached) = identity_test_support::silent_listener_on("127.0.0.2").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let metadata = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{internal}/token"),
    });
    let app = axum::Router::new().route(
        "/.well-known/oauth-authorization-server",
        axum::routing::get(move || {
            let metadata = metadata.clone();
            async move { axum::Json(metadata) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = ExchangeConfig::builder("slot", "agent")
        .issuer(&issuer)
        .allow_http_loopback(true)
        .client_auth(ClientAuth::None)
        .build()
        .unwrap();
    let store = TokenExchangeStore::builder()
        .config(config)
        .build()
        .unwrap();
    let err = find(&store).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { code, .. } if code == "unsafe_url"),
        "{err:?}"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}
