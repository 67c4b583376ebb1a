//! Limits that protect the server: request timeout, requests in flight, header read timeout.
//! A store that takes its time stands in for a slow backend; no real one can be made this slow
//! on demand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

mod running;
use running::Running;

use std::sync::Arc;
use std::time::Duration;

use agent_identity::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, RequestContext, Router,
    RoutingRule, async_trait,
};
use agent_identity_server::app::health::HealthMonitor;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::app::settings::ServerSettings;
use agent_identity_server::app::{AppState, app};
use agent_identity_server::auth::Authenticator;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// Answers after `delay`.
#[derive(Debug)]
struct SlowStore {
    delay: Duration,
}

#[async_trait]
impl CredentialStore for SlowStore {
    fn backend(&self) -> &'static str {
        "slow"
    }
    async fn find_by_ref(
        &self,
        r: &CredentialRef,
        _: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        tokio::time::sleep(self.delay).await;
        Ok(Some(Credential::new(
            "slow-cred",
            CredentialKind::Fixed,
            r.as_str(),
        )?))
    }
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
    async fn list_by_kind(&self, _: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}

async fn slow_app(
    delay: Duration,
    settings: ServerSettings,
) -> (axum::Router, std::net::SocketAddr) {
    let router = Arc::new(
        Router::builder()
            .default_store(SlowStore { delay })
            .rule(RoutingRule::new("all", "slot").with_priority(1))
            .build()
            .unwrap(),
    );
    let bound = settings.listen;
    let state = AppState {
        health: HealthMonitor::start(router.clone()).await,
        router,
        metrics: Arc::new(Metrics::new()),
        settings: Arc::new(settings),
        authenticator: Arc::new(Authenticator::none()),
        bound,
        oauth: None,
        proxy: None,
        policies: None,
        approvals: None,
        web: None,
        reloader: None,
        mcp: None,
        attestor: None,
        revocations: None,
    };
    (app(state), bound)
}

fn resolve_request() -> Request<Body> {
    let body = r#"{"userId":"u","resourceId":"r","resourceKind":"shared","provider":"p","model":"m","action":"read","traceId":"t"}"#;
    Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_request_that_takes_too_long_gets_a_json_504_not_a_bare_408() {
    let settings = ServerSettings {
        request_timeout_ms: 100,
        ..ServerSettings::default()
    };
    let (app, _) = slow_app(Duration::from_secs(5), settings).await;
    let started = std::time::Instant::now();
    let response = app.oneshot(resolve_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "timeout");
    assert!(body["error"].as_str().unwrap().contains("100 ms"), "{body}");
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_get_429_without_waiting() {
    let settings = ServerSettings {
        max_in_flight: 1,
        ..ServerSettings::default()
    };
    let (app, _) = slow_app(Duration::from_millis(500), settings).await;
    let first = tokio::spawn(app.clone().oneshot(resolve_request()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = app.clone().oneshot(resolve_request()).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "1");
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    // Once the first is done, there is room again.
    assert_eq!(
        app.oneshot(resolve_request()).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let running = Running::serve(
        "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_ms = 300\nmax_connections = 2\n",
    )
    .await;
    let address = running.address;

    // Headers never completed: the server closes the connection after the timeout.
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the connection was still open after 5 s");

    // Over the connection cap: two idle connections held open, the third is told 429.
    let _a = tokio::net::TcpStream::connect(address).await.unwrap();
    let _b = tokio::net::TcpStream::connect(address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");

    running.stop().await;
}

/// The resident memory of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Sends `head` on a fresh connection and reads what comes back (the error of a connection the
/// server reset counts as nothing read).
async fn exchange(address: std::net::SocketAddr, head: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(head).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_headers_keep_memory_bounded_while_health_answers() {
    let running = Running::serve("[server]\nlisten = \"127.0.0.1:0\"\n").await;
    let address = running.address;

    // Each limit on its own: too many fields, and one field too large, are 431s.
    let mut many = format!("GET /health HTTP/1.1\r\nHost: {address}\r\n");
    for index in 0..80 {
        many.push_str(&format!("x-field-{index}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = exchange(address, many.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // (hyper checks the cap when a head is still incomplete, so a head may pass it by less
    // than one read; this one is three times over.)
    let large = format!(
        "GET /health HTTP/1.1\r\nHost: {address}\r\nx-large: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = exchange(address, large.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let before = resident_bytes();
    // 200 connections sending their headers a byte at a time...
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(tokio::spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
                return;
            };
            if stream
                .write_all(b"GET /health HTTP/1.1\r\nx-slow: ")
                .await
                .is_err()
            {
                return;
            }
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b"a").await.is_err() {
                    return;
                }
            }
        }));
    }
    // ...and 100 sending 100 headers of 4 KiB each.
    let mut huge = String::from("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for index in 0..100 {
        huge.push_str(&format!("x-big-{index}: {}\r\n", "b".repeat(4096)));
    }
    huge.push_str("\r\n");
    let huge = Arc::new(huge.into_bytes());
    for _ in 0..100 {
        let huge = huge.clone();
        clients.push(tokio::spawn(async move {
            let _ = exchange(address, &huge).await;
        }));
    }
    // Throughout, /health keeps answering (a starved server would leave `exchange` waiting out
    // its five seconds with no answer; how fast it answers is a figure for benchmarks, not a
    // test), and memory stays bounded.
    let mut peak = before;
    for _ in 0..10 {
        let health =
            format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        let answer = exchange(address, health.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        peak = peak.max(resident_bytes());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for client in clients {
        let _ = client.await;
    }
    peak = peak.max(resident_bytes());
    let growth = peak.saturating_sub(before);
    assert!(growth < 50 * 1024 * 1024, "memory grew by {growth} bytes");

    running.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_its_whole_body_first_still_reads_the_413() {
    let running = Running::serve("[server]\nlisten = \"127.0.0.1:0\"\n").await;
    let address = running.address;
    // As Python's http.client does: the whole body is written, piece by piece, then the answer
    // read. Answered and closed after the head, the later pieces would meet a reset socket.
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(512 * 1024));
    for (content_type, expected) in [
        ("application/json", "HTTP/1.1 413"),
        ("text/plain", "HTTP/1.1 415"),
    ] {
        let head = format!(
            "POST /api/resolve HTTP/1.1\r\nHost: {address}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        for piece in body.as_bytes().chunks(64 * 1024) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stream
                .write_all(piece)
                .await
                .expect("the server closed the connection while the body was being sent");
        }
        let mut answer = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .unwrap()
            .expect("the connection was reset before the answer could be read");
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with(expected), "{answer}");
    }
    running.stop().await;
}
