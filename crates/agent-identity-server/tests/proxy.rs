//! The sidecar's injection proxy, in process, to a local upstream: a small axum server of this
//! test that records the credential it receives (the real APIs cannot be reached here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::load_str;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const CANARY: &str = "sk-proxy-canary-77d1";

async fn upstream() -> (String, Arc<Mutex<Option<HeaderMap>>>) {
    let seen: Arc<Mutex<Option<HeaderMap>>> = Arc::default();
    let recorder = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let recorder = recorder.clone();
        async move {
            *recorder.lock().unwrap() = Some(headers);
            axum::Json(serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion"}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), seen)
}

fn config(base: &str) -> String {
    format!(
        r#"
[stores.default]
type = "memory"
credentials = [{{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }}]
secrets = {{ openai-prod = {{ env = "OPENAI_KEY" }} }}

[[rules]]
id = "openai-for-alice"
credentialRef = "openai-prod"
priority = 10
matchUserId = "alice"
matchProvider = "openai"

[upstreams.openai]
base_url = "{base}"
provider = "openai"
methods = ["POST"]
path_prefixes = ["/chat/"]
allow_http_loopback = true
"#
    )
}

async fn sidecar(base: &str) -> axum::Router {
    sidecar_of(&config(base)).await
}

/// The sidecar of configuration `text`, in process, with the upstream's key in its environment.
async fn sidecar_of(text: &str) -> axum::Router {
    let env = |name: &str| (name == "OPENAI_KEY").then(|| CANARY.to_owned());
    let loaded = load_str(text, Path::new("."), "test".into(), &env, None).unwrap();
    let bound = "127.0.0.1:3001".parse().unwrap();
    app(loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap())
}

async fn call(app: &axum::Router, path: &str, user: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::post(path)
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .header("authorization", "Bearer the-agents-own-token")
        .header("x-agent-identity-user", user)
        .body(Body::from(r#"{"model":"gpt-4o","messages":[]}"#))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn the_proxy_puts_the_users_credential_in_and_keeps_it_from_the_agent() {
    let (base, seen) = upstream().await;
    let app = sidecar(&base).await;

    let (status, headers, body) = call(&app, "/proxy/openai/chat/completions", "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("chatcmpl-1"), "{body}");
    assert!(!body.contains(CANARY) && !format!("{headers:?}").contains(CANARY));
    let upstream_saw = seen.lock().unwrap().take().unwrap();
    assert_eq!(
        upstream_saw["authorization"],
        format!("Bearer {CANARY}").as_str()
    );

    // No rule gives bob a credential: the resolve endpoint's 403, and no call upstream.
    let (status, _, body) = call(&app, "/proxy/openai/chat/completions", "bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let denial: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(denial["code"], "no_matching_rule", "{body}");
    assert!(seen.lock().unwrap().is_none());

    let (status, _, body) = call(&app, "/proxy/openai/models", "alice").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("path_not_allowed"), "{body}");
    let (status, _, body) = call(&app, "/proxy/github/user", "alice").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(seen.lock().unwrap().is_none());

    // The call that reached the upstream is counted per upstream, with its bytes each way; the
    // refusals never reached it.
    let request = Request::get("/metrics")
        .header("host", "127.0.0.1:3001")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let metrics = response.into_body().collect().await.unwrap().to_bytes();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let sent = r#"{"model":"gpt-4o","messages":[]}"#.len();
    let received = r#"{"id":"chatcmpl-1","object":"chat.completion"}"#.len();
    for line in [
        r#"agent_identity_proxy_calls_total{upstream="openai",status="2xx"} 1"#.to_owned(),
        format!(
            r#"agent_identity_proxy_body_bytes_total{{upstream="openai",direction="sent"}} {sent}"#
        ),
        format!(
            r#"agent_identity_proxy_body_bytes_total{{upstream="openai",direction="received"}} {received}"#
        ),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
    assert!(!metrics.contains(CANARY));
}

#[tokio::test]
async fn an_upstream_the_policy_refuses_stops_the_configuration() {
    let text = config("http://10.1.2.3/v1").replace("allow_http_loopback = true\n", "");
    let env = |_: &str| Some(CANARY.to_owned());
    let err = load_str(&text, Path::new("."), "test".into(), &env, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("upstreams.openai, field `base_url`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_spent_budget_is_429_with_retry_after_on_the_proxy_and_403_on_resolve() {
    let (base, _) = upstream().await;
    let text = format!(
        "{}\n[[budgets]]\nid = \"alice-openai\"\nper = \"user\"\nrequests = 2\nwindow_secs = 3600\nrules = [\"openai-for-alice\"]\n",
        config(&base)
    );
    let app = sidecar_of(&text).await;
    for _ in 0..2 {
        let (status, _, body) = call(&app, "/proxy/openai/chat/completions", "alice").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // One request refills every 1800 s: the proxy says when, as a 429.
    let (status, headers, body) = call(&app, "/proxy/openai/chat/completions", "alice").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1800).contains(&wait), "{wait}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "budget_exhausted");
    assert_eq!(body["budget"], "alice-openai");
    assert!(!body.to_string().contains(CANARY));
    // The resolve endpoint counts against the same allowance: a 403, with Retry-After too.
    let context = serde_json::json!({"userId": "alice", "resourceId": "r", "resourceKind": "shared",
        "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t"});
    let request = Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .body(Body::from(context.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().contains_key("retry-after"));
}

#[test]
fn a_budget_naming_no_rule_stops_the_configuration() {
    let text = format!(
        "{}\n[[budgets]]\nid = \"b\"\nper = \"user\"\nrequests = 2\nwindow_secs = 60\nrules = [\"no-such-rule\"]\n",
        config("http://127.0.0.1:9/v1")
    );
    let env = |name: &str| (name == "OPENAI_KEY").then(|| CANARY.to_owned());
    let err = load_str(&text, Path::new("."), "test".into(), &env, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("budget `b`, field `rules`: names `no-such-rule`, which is no rule"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_threshold_is_posted_to_the_webhook_once() {
    // The webhook: a chat tool's incoming hook, here a local server keeping what it receives.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let kept = received.clone();
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.0);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let (base, _) = upstream().await;
    let text = format!(
        "{}\n[[budgets]]\nid = \"alice-openai\"\nper = \"user\"\nrequests = 5\nwindow_secs = 3600\n\n[notifications]\nwebhook_url = \"http://{hook_address}/hook\"\nallow_http_loopback = true\n",
        config(&base)
    );
    let app = sidecar_of(&text).await;
    for _ in 0..3 {
        call(&app, "/proxy/openai/chat/completions", "alice").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        received.lock().unwrap().is_empty(),
        "told before 80% was spent"
    );
    // The fourth call spends 80%: one notification; the fifth, and the refused sixth, none more.
    for _ in 0..3 {
        call(&app, "/proxy/openai/chat/completions", "alice").await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no notification");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["event"], "budget_soft_limit");
    assert_eq!(received[0]["budget"], "alice-openai");
    assert_eq!(received[0]["key"], "alice");
    assert_eq!(received[0]["remaining"], 1);
    assert!(
        received[0]["text"]
            .as_str()
            .unwrap()
            .contains("alice-openai")
    );
}

#[test]
fn a_plain_http_webhook_elsewhere_stops_the_configuration() {
    let text = format!(
        "{}\n[notifications]\nwebhook_url = \"http://hooks.example.com/x\"\n",
        config("http://127.0.0.1:9/v1")
    );
    let env = |name: &str| (name == "OPENAI_KEY").then(|| CANARY.to_owned());
    let err = load_str(&text, Path::new("."), "test".into(), &env, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("notifications, field `webhook_url`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_n_plus_ten_concurrent_proxied_calls_n_go_through_a_concurrency_budget() {
    const N: usize = 5;
    // An upstream that takes its time, so that every call is in flight at once.
    let slow = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        axum::Json(serde_json::json!({"id": "chatcmpl-1"}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, slow).await.unwrap() });
    let text = format!(
        "{}\n[[budgets]]\nid = \"alice-in-flight\"\nper = \"user\"\nconcurrent = {N}\n",
        config(&format!("http://{address}/v1"))
    );
    let app = sidecar_of(&text).await;
    let calls = (0..N + 10).map(|_| {
        let app = app.clone();
        tokio::spawn(async move { call(&app, "/proxy/openai/chat/completions", "alice").await })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|outcome| outcome.unwrap().0)
        .collect();
    let passed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((passed, refused), (N, 10), "{statuses:?}");
    // Every answer has been passed on: the slots are back.
    let (status, _, body) = call(&app, "/proxy/openai/chat/completions", "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
