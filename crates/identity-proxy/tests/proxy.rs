//! The proxy against a local upstream: a small axum server of this test that records what it
//! receives and answers as an API would (the real APIs cannot be reached here). It also stalls,
//! streams server-sent events, and redirects on demand, which a real API will not do on cue.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use identity_core::{Credential, CredentialKind, RoutingRule, Secret};
use identity_memory::MemoryCredentialStore;
use identity_proxy::{Caller, Proxy, ProxyError, Upstream, UpstreamConfig};
use identity_router::Router;

const CANARY: &str = "sk-canary-5f0c2d";

/// What the upstream saw of the last call.
#[derive(Default)]
struct Seen {
    headers: Option<HeaderMap>,
    uri: Option<String>,
    body: Option<Vec<u8>>,
}

type Recorder = Arc<Mutex<Seen>>;

async fn record(State(seen): State<Recorder>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut seen = seen.lock().unwrap();
    seen.headers = Some(parts.headers);
    seen.uri = Some(parts.uri.to_string());
    seen.body = Some(body.to_vec());
    // An API that echoes the key in a header of its answer: the proxy must not pass it back.
    (
        [("x-echo-key", CANARY), ("x-request-id", "req-1")],
        axum::Json(serde_json::json!({"ok": true})),
    )
        .into_response()
}

async fn events() -> Response {
    let stream = futures::stream::iter(0..3).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, std::io::Error>(format!("data: event {i}\n\n"))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn stall() -> Response {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late".into_response()
}

async fn redirect() -> Response {
    (
        StatusCode::FOUND,
        [("location", "http://127.0.0.1:9/elsewhere")],
    )
        .into_response()
}

async fn upstream() -> (String, Recorder) {
    let seen = Recorder::default();
    let app = axum::Router::new()
        .route("/v1/events", get(events))
        .route("/v1/stall", get(stall))
        .route("/v1/redirect", get(redirect))
        .route("/v1/{*rest}", any(record))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), seen)
}

fn router() -> Arc<Router> {
    let store = MemoryCredentialStore::new();
    store.insert(
        Credential::new("cred-api", CredentialKind::Fixed, "api-key")
            .unwrap()
            .with_secret(Secret::new(CANARY)),
    );
    Arc::new(
        Router::builder()
            .default_store(store)
            .rule(RoutingRule::new("api", "api-key").with_priority(1))
            .build()
            .unwrap(),
    )
}

fn proxy(base: &str, extra: serde_json::Value) -> Proxy {
    let mut config = serde_json::json!({
        "base_url": base, "provider": "example", "allow_http_loopback": true,
        "idle_timeout_ms": 1000, "max_request_bytes": 1024
    });
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    let config: UpstreamConfig = serde_json::from_value(config).unwrap();
    Proxy::new(router(), [Upstream::new("api", config).unwrap()])
}

fn request(method: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request {
    let mut builder = http::Request::builder().method(method).uri("/ignored");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_secret_is_injected_and_the_callers_own_credentials_never_reach_the_upstream() {
    let (base, seen) = upstream().await;
    let proxy = proxy(&base, serde_json::json!({}));
    let call = request(
        "POST",
        &[
            ("authorization", "Bearer callers-own-token"),
            ("cookie", "session=abc"),
            ("x-agent-identity-user", "alice"),
            ("content-type", "application/json"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
        ],
        r#"{"model":"gpt-4o"}"#,
    );
    let response = proxy
        .forward("api", "/chat/completions", Caller::default(), call)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("x-echo-key").is_none());
    assert_eq!(response.headers()["x-request-id"], "req-1");
    let body = text(response).await;
    assert!(!body.contains(CANARY), "{body}");

    let seen = seen.lock().unwrap();
    let headers = seen.headers.as_ref().unwrap();
    assert_eq!(
        headers["authorization"],
        format!("Bearer {CANARY}").as_str()
    );
    assert_eq!(headers.get_all("authorization").iter().count(), 1);
    assert!(headers.get("cookie").is_none());
    assert!(headers.get("x-hop").is_none());
    assert!(headers.get("x-agent-identity-user").is_none());
    assert_eq!(seen.uri.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(seen.body.as_deref(), Some(&br#"{"model":"gpt-4o"}"#[..]));
}

#[tokio::test]
async fn a_named_header_basic_and_a_query_parameter_carry_the_secret_as_configured() {
    let (base, seen) = upstream().await;
    let cases = [
        (
            serde_json::json!({"type": "header", "name": "x-api-key"}),
            "x-api-key",
            CANARY.to_owned(),
        ),
        (
            serde_json::json!({"type": "basic", "username": "agent"}),
            "authorization",
            format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("agent:{CANARY}")
                )
            ),
        ),
    ];
    for (inject, header, expected) in cases {
        let proxy = proxy(&base, serde_json::json!({ "inject": inject }));
        let call = request(
            "GET",
            &[("x-agent-identity-user", "bob"), (header, "callers")],
            Body::empty(),
        );
        let response = proxy
            .forward("api", "/user", Caller::default(), call)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = seen.lock().unwrap().headers.clone().unwrap();
        assert_eq!(headers[header], expected.as_str());
        assert_eq!(headers.get_all(header).iter().count(), 1);
    }
    let proxy = proxy(
        &base,
        serde_json::json!({ "inject": {"type": "query", "name": "key"} }),
    );
    let call = http::Request::builder()
        .uri("/ignored?q=rust")
        .header("x-agent-identity-user", "bob")
        .body(Body::empty())
        .unwrap();
    proxy
        .forward("api", "/search", Caller::default(), call)
        .await
        .unwrap();
    assert_eq!(
        seen.lock().unwrap().uri.as_deref(),
        Some(format!("/v1/search?q=rust&key={CANARY}").as_str())
    );
}

#[tokio::test]
async fn server_sent_events_arrive_as_they_are_sent() {
    let (base, _) = upstream().await;
    let proxy = proxy(&base, serde_json::json!({}));
    let call = request("GET", &[("x-agent-identity-user", "alice")], Body::empty());
    let started = Instant::now();
    let response = proxy
        .forward("api", "/events", Caller::default(), call)
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.into_body().into_data_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"data: event 0\n\n");
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let all_at = started.elapsed();
    assert_eq!(rest, b"data: event 1\n\ndata: event 2\n\n");
    // The upstream sends an event every 300 ms: the first arrived about 600 ms before the
    // end, not held back until the stream was over.
    assert!(
        all_at.saturating_sub(first_at) >= Duration::from_millis(450),
        "{first_at:?} {all_at:?}"
    );
}

/// Keeps every call it is told of.
#[derive(Debug, Default)]
struct Calls(std::sync::Mutex<Vec<identity_proxy::ProxiedCall>>);

impl identity_proxy::CallObserver for Calls {
    fn call_ended(&self, call: &identity_proxy::ProxiedCall) {
        self.0.lock().unwrap().push(call.clone());
    }
}

#[tokio::test]
async fn a_call_is_reported_when_its_answer_ends_with_the_bytes_it_carried() {
    let (base, _) = upstream().await;
    let calls = Arc::new(Calls::default());
    let proxy = proxy(&base, serde_json::json!({})).with_observer(calls.clone());
    let call = request("GET", &[("x-agent-identity-user", "alice")], Body::empty());
    let response = proxy
        .forward("api", "/events", Caller::default(), call)
        .await
        .unwrap();
    // Not yet: the answer is still streaming.
    assert!(calls.0.lock().unwrap().is_empty());
    let body = text(response).await;
    let ended = calls.0.lock().unwrap().clone();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].status, Some(200));
    assert!(ended[0].complete);
    assert_eq!(ended[0].bytes_received, body.len() as u64);
    assert_eq!(&*ended[0].upstream, "api");
    assert_eq!(ended[0].path, "/events");

    // A caller that goes away after the first event ends the call, incomplete.
    let call = request("GET", &[("x-agent-identity-user", "alice")], Body::empty());
    let response = proxy
        .forward("api", "/events", Caller::default(), call)
        .await
        .unwrap();
    let mut stream = response.into_body().into_data_stream();
    let first = stream.next().await.unwrap().unwrap();
    drop(stream);
    let ended = calls.0.lock().unwrap().clone();
    assert_eq!(ended.len(), 2);
    assert!(!ended[1].complete);
    assert_eq!(ended[1].bytes_received, first.len() as u64);

    // A body sent on is counted.
    let call = request(
        "POST",
        &[("x-agent-identity-user", "alice")],
        Body::from("0123456789"),
    );
    let response = proxy
        .forward("api", "/items", Caller::default(), call)
        .await
        .unwrap();
    let _ = text(response).await;
    let ended = calls.0.lock().unwrap().clone();
    assert_eq!(ended[2].bytes_sent, 10);
}

#[tokio::test]
async fn what_the_upstream_does_not_allow_is_refused_before_any_call() {
    let (base, seen) = upstream().await;
    let proxy = proxy(
        &base,
        serde_json::json!({ "methods": ["GET"], "path_prefixes": ["/repos/"] }),
    );
    let user = [("x-agent-identity-user", "alice")];
    let cases = [
        ("POST", "/repos/a", "method_not_allowed"),
        ("GET", "/admin", "path_not_allowed"),
        ("GET", "/repos/../admin", "path_not_allowed"),
        ("GET", "/repos/a%2f..%2fadmin", "path_not_allowed"),
    ];
    for (method, path, code) in cases {
        let err = proxy
            .forward(
                "api",
                path,
                Caller::default(),
                request(method, &user, Body::empty()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{method} {path}");
    }
    let err = proxy
        .forward(
            "nowhere",
            "/x",
            Caller::default(),
            request("GET", &user, Body::empty()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::NOT_FOUND);
    // No user: the context is incomplete, refused as the resolve endpoint refuses it.
    let err = proxy
        .forward(
            "api",
            "/repos/a",
            Caller::default(),
            request("GET", &[], Body::empty()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Context(_)), "{err}");
    // A caller bound to alice may not act for bob.
    let bound = Caller::new(Some("alice".into()), None);
    let err = proxy
        .forward(
            "api",
            "/repos/a",
            bound,
            request("GET", &[("x-agent-identity-user", "bob")], Body::empty()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "caller_user_mismatch");
    assert!(
        seen.lock().unwrap().headers.is_none(),
        "a refused call reached the upstream"
    );
}

#[tokio::test]
async fn an_upload_past_the_cap_is_cut_and_a_stalled_upstream_times_out() {
    let (base, _) = upstream().await;
    let proxy = proxy(&base, serde_json::json!({}));
    let user = [("x-agent-identity-user", "alice")];
    // Declared too large: refused at once.
    let declared = request(
        "POST",
        &[user[0], ("content-length", "4096")],
        vec![b'x'; 4096],
    );
    let err = proxy
        .forward("api", "/upload", Caller::default(), declared)
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Streamed without a length: cut once it passes the cap.
    let chunks = futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 256])));
    let streamed = request("POST", &user, Body::from_stream(chunks));
    let err = proxy
        .forward("api", "/upload", Caller::default(), streamed)
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE, "{err}");

    let started = Instant::now();
    let err = proxy
        .forward(
            "api",
            "/stall",
            Caller::default(),
            request("GET", &user, Body::empty()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let err = proxy
        .forward(
            "api",
            "/redirect",
            Caller::default(),
            request("GET", &user, Body::empty()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY, "{err}");
}

#[tokio::test]
async fn an_upstream_on_a_private_address_is_refused_when_configured() {
    let config: UpstreamConfig = serde_json::from_value(serde_json::json!({
        "base_url": "https://169.254.169.254/latest", "provider": "metadata"
    }))
    .unwrap();
    let err = Upstream::new("metadata", config).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("base_url"));
    let err = serde_json::from_value::<UpstreamConfig>(serde_json::json!({
        "base_url": "https://api.example.com", "provider": "x", "inject": {"type": "cookie"}
    }))
    .unwrap_err();
    assert!(err.to_string().contains("cookie"), "{err}");
}

#[tokio::test]
async fn the_secret_is_in_no_log_line_down_to_trace_and_each_call_is_audited() {
    let logs = identity_test_support::CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let (base, _) = upstream().await;
    for inject in [
        serde_json::json!({"type": "bearer"}),
        serde_json::json!({"type": "query", "name": "key"}),
    ] {
        let proxy = proxy(&base, serde_json::json!({ "inject": inject }));
        let call = http::Request::builder()
            .method("POST")
            .uri("/ignored?q=private-query-value")
            .header("x-agent-identity-user", "alice")
            .body(Body::from("{}"))
            .unwrap();
        let response = proxy
            .forward("api", "/items", Caller::default(), call)
            .await
            .unwrap();
        assert!(!text(response).await.contains(CANARY));
    }
    let text = logs.text();
    assert!(!text.contains(CANARY), "the secret is in the logs");
    assert!(
        !text.contains("private-query-value"),
        "a query value is in the audit line"
    );
    assert_eq!(text.matches("proxied call").count(), 2, "{text}");
    assert!(
        text.contains("credential_id=\"cred-api\"") || text.contains("credential_id=cred-api"),
        "{text}"
    );
}

#[tokio::test]
async fn nested_as_a_router_it_proxies_for_the_caller_the_backend_put_in_the_extensions() {
    use tower::ServiceExt as _;
    let (base, seen) = upstream().await;
    let config: UpstreamConfig = serde_json::from_value(serde_json::json!({
        "base_url": base, "provider": "example", "allow_http_loopback": true
    }))
    .unwrap();
    let proxy = Proxy::new(router(), [Upstream::new("api", config).unwrap()]);
    // The backend's own authentication binds the caller to alice.
    let app = axum::Router::new()
        .nest("/proxy", proxy.into_router())
        .layer(axum::middleware::map_request(
            |mut request: Request| async move {
                request
                    .extensions_mut()
                    .insert(Caller::new(Some("alice".into()), None));
                request
            },
        ));
    let call = |path: &str, user: &str| {
        http::Request::get(path)
            .header("x-agent-identity-user", user)
            .body(Body::empty())
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(call("/proxy/api/items", "alice"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = seen.lock().unwrap().headers.clone().unwrap();
    assert_eq!(
        headers["authorization"],
        format!("Bearer {CANARY}").as_str()
    );
    let response = app.oneshot(call("/proxy/api/items", "bob")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["code"], "caller_user_mismatch");
}
