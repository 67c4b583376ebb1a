//! Spend per day through the sidecar's proxy: a model API's answers, JSON and streamed, report
//! their usage; the sidecar prices it, tells the webhook once at the soft threshold, and refuses
//! with 429 once the day's spend is reached, counted in memory or in a real Redis. The model
//! API and the webhook are small local servers of this test: the real ones cannot be reached
//! here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::load_str;
use axum::body::Body;
use axum::response::IntoResponse;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A chat completions endpoint that reports 1,000 tokens in and 200 out, as JSON or, when the
/// request says `"stream": true`, as server-sent events with the usage in the last event.
async fn model_api() -> String {
    let app = axum::Router::new().fallback(|body: String| async move {
        let request: Value = serde_json::from_str(&body).unwrap_or_default();
        if request["stream"] == true {
            let events = concat!(
                "data: {\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
                "data: {\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":200}}\n\n",
                "data: [DONE]\n\n",
            );
            ([(header::CONTENT_TYPE, "text/event-stream")], events).into_response()
        } else {
            axum::Json(json!({"model": "gpt-4o-2024-08-06", "choices": [],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}}))
            .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |axum::Json(event): axum::Json<Value>| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push(event);
            StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), seen)
}

fn config(base: &str, hook: &str) -> String {
    format!(
        r#"
[stores.default]
type = "memory"
credentials = [{{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }}]
secrets = {{ openai-prod = {{ env = "OPENAI_KEY" }} }}

[[rules]]
id = "openai"
credentialRef = "openai-prod"
priority = 10
matchProvider = "openai"

[upstreams.openai]
base_url = "{base}"
provider = "openai"
methods = ["POST"]
path_prefixes = ["/chat/"]
allow_http_loopback = true

[[budgets]]
id = "daily-spend"
per = "user"
max_daily_usd = 0.01
soft_percent = 50

[prices]
"gpt-4o*" = {{ input_per_million = 2.5, output_per_million = 10.0 }}

[notifications]
webhook_url = "{hook}"
allow_http_loopback = true
"#
    )
}

async fn chat(app: &axum::Router, user: &str, stream: bool) -> (StatusCode, HeaderMap, String) {
    let body = json!({"model": "gpt-4o", "messages": [], "stream": stream}).to_string();
    let request = Request::post("/proxy/openai/chat/completions")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .header("x-agent-identity-user", user)
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_spend_is_reached_from_reported_usage_streamed_or_not() {
    let (hook, told) = webhook().await;
    let text = config(&model_api().await, &hook);
    // Counted in memory, a call's spend is counted before its answer ends.
    reaches_the_days_spend(&text, &told, |_| async {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_counted_in_redis_is_reached_the_same() {
    let redis = identity_test_support::RedisServer::start().await;
    let (hook, told) = webhook().await;
    let text = format!(
        "budgets_redis = \"shared\"\n\n[redis.shared]\nurl = \"{}\"\n{}",
        redis.url(),
        config(&model_api().await, &hook)
    );
    // Counted over the network, a call's spend is counted as a task after its answer: the
    // test waits for Redis to hold the day's total before the next call.
    let redis = &redis;
    reaches_the_days_spend(&text, &told, |micro_usd| async move {
        for _ in 0..200 {
            let keys = redis.command(&["KEYS", "*:spend:*"]).await.unwrap();
            if let Some(key) = keys.lines().find(|line| line.contains(":spend:")) {
                let value = redis.command(&["GET", key]).await.unwrap();
                if value.contains(&format!("\r\n{micro_usd}\r\n")) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("Redis never held alice's spend of {micro_usd} micro-dollars");
    })
    .await;
}

/// Alice's calls through the proxy reach the day's spend; `counted` waits until her spend so
/// far (in micro-dollars) is counted.
async fn reaches_the_days_spend<F: Future<Output = ()>>(
    text: &str,
    told: &Mutex<Vec<Value>>,
    counted: impl Fn(u64) -> F,
) {
    let env = |name: &str| (name == "OPENAI_KEY").then(|| "sk-spend-canary".to_owned());
    let loaded = load_str(text, Path::new("."), "test".into(), &env, None).unwrap();
    let app = app(loaded
        .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap());

    // Each call costs 1,000 × $2.50 + 200 × $10.00 per million tokens: $0.0045.
    let (status, _, body) = chat(&app, "alice", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    counted(4_500).await;
    let (status, _, body) = chat(&app, "alice", true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("[DONE]"),
        "the stream passed through whole: {body}"
    );
    counted(9_000).await;
    // $0.009 spent: under $0.01, so one more call is let through; it crosses the limit.
    let (status, _, _) = chat(&app, "alice", false).await;
    assert_eq!(status, StatusCode::OK);
    counted(13_500).await;
    let (status, headers, body) = chat(&app, "alice", true).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let refusal: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refusal["code"], "budget_exhausted");
    assert_eq!(refusal["budget"], "daily-spend");
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    // Another user has a day of their own.
    let (status, _, _) = chat(&app, "bob", false).await;
    assert_eq!(status, StatusCode::OK);

    // The soft threshold ($0.005) was crossed by alice's second call: told once.
    let mut soft: Vec<Value> = Vec::new();
    for _ in 0..40 {
        soft = told
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event["event"] == "budget_spend_soft_limit")
            .cloned()
            .collect();
        if !soft.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Any second notice would have come with the calls after the first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all_soft = told
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event["event"] == "budget_spend_soft_limit")
        .count();
    assert_eq!(all_soft, 1, "{soft:?}");
    assert_eq!(soft[0]["key"], "alice");
    assert_eq!(soft[0]["maxUsd"], 0.01);
    assert!(
        (soft[0]["spentUsd"].as_f64().unwrap() - 0.009).abs() < 1e-9,
        "{}",
        soft[0]
    );
}

#[tokio::test]
async fn a_spend_budget_needs_prices() {
    let text = config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/hook").replace(
        "[prices]\n\"gpt-4o*\" = { input_per_million = 2.5, output_per_million = 10.0 }\n",
        "",
    );
    let err = load_str(
        &text,
        Path::new("."),
        "test".into(),
        &|_| Some("k".into()),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("max_daily_usd"), "{err}");
}
