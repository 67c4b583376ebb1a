//! The HTTP contract of WIRE.md, in process: what the reference's clients send is accepted, bad
//! bodies get a clear 4xx (never a 5xx), and no secret reaches a response.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::Arc;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::{Metrics, MetricsObserver};
use agent_identity_server::config::load_str;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const CANARY: &str = "sk-wire-canary-5d1e7a";

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:3001"
body_limit_bytes = 65536

[stores.default]
type = "memory"
secrets = { "shared-ro" = { env = "SHARED_RO_KEY" }, "shared-rw" = { env = "SHARED_RW_KEY" }, "alice" = { env = "ALICE_KEY" } }

[[stores.default.credentials]]
id = "cred-alice"
kind = "user-delegated"
name = "Alice"
scope = "read write"
status = "active"
ref = "alice"

[[stores.default.credentials]]
id = "cred-ro"
kind = "fixed"
name = "Shared read-only"
scope = "read"
status = "active"
ref = "shared-ro"
expiresAt = "2099-06-01T00:00:00+02:00"

[[stores.default.credentials]]
id = "cred-rw"
kind = "fixed"
name = "Shared writer"
scope = "read write"
status = "active"
ref = "shared-rw"
expiresAt = "2099-05-31T23:00:00Z"

[[rules]]
id = "alice-personal"
credentialRef = "alice"
credentialKind = "user-delegated"
priority = 20
matchUserId = "alice"
matchResourceKind = "personal"

[[rules]]
id = "shared-writes"
credentialRef = "shared-rw"
priority = 15
matchResourceKind = "shared"
matchAction = ["write", "delete"]

[[rules]]
id = "shared-reads"
credentialRef = "shared-ro"
priority = 10
matchResourceKind = "shared"
readOnly = true
"#;

async fn test_app() -> axum::Router {
    let metrics = Arc::new(Metrics::new());
    let env = |name: &str| match name {
        "SHARED_RO_KEY" | "SHARED_RW_KEY" | "ALICE_KEY" => Some(format!("{CANARY}-{name}")),
        _ => None,
    };
    let loaded = load_str(
        CONFIG,
        Path::new("."),
        "test".into(),
        &env,
        Some(Arc::new(MetricsObserver(metrics.clone()))),
    )
    .unwrap();
    let state = loaded
        .into_state(metrics, "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap();
    app(state)
}

struct Answer {
    status: StatusCode,
    body: String,
    headers: http::HeaderMap,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        !body.contains(CANARY),
        "a secret reached a response body: {body}"
    );
    Answer {
        status,
        body,
        headers,
    }
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "localhost:3001")
        .body(Body::empty())
        .unwrap()
}

fn context() -> Value {
    json!({"userId": "alice", "resourceId": "crm", "resourceKind": "personal", "provider": "openai",
           "model": "gpt-4o", "action": "read", "traceId": "trace-1"})
}

fn migration() -> Value {
    json!({"migrationId": "m1", "phase": "load", "sourceResourceId": "old", "targetResourceId": "new",
           "userId": "bot", "provider": "anthropic", "model": "claude", "traceId": "t", "dryRun": false})
}

#[tokio::test]
async fn health_answers_both_families_of_clients() {
    let app = test_app().await;
    for path in ["/health", "/api/health"] {
        // The published client sends a Content-Type on its GET.
        let request = Request::get(path)
            .header("host", "localhost:3001")
            .header("content-type", "application/json")
            .body(Body::empty())
            .unwrap();
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::OK);
        let body = answer.json();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["ok"], true);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(agent_identity::parse_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
        for key in ["credentialsLoaded", "credentialCount"] {
            assert_eq!(body[key], 3, "{key}");
        }
        for key in ["rulesLoaded", "ruleCount"] {
            assert_eq!(body[key], 3, "{key}");
        }
    }
}

#[tokio::test]
async fn resolve_grants_with_the_reference_shape() {
    let app = test_app().await;
    let answer = send(&app, post("/api/resolve", context().to_string())).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(
        answer.json(),
        json!({"ok": true, "credentialId": "cred-alice", "resolvedFor": "alice", "expiresAt": null})
    );
    let mut shared = context();
    shared["resourceKind"] = json!("shared");
    let body = send(&app, post("/api/resolve", shared.to_string()))
        .await
        .json();
    assert_eq!(body["resolvedFor"], "service");
    assert_eq!(body["expiresAt"], "2099-05-31T22:00:00Z");
}

#[tokio::test]
async fn what_real_clients_send_is_accepted() {
    let app = test_app().await;
    let mut bodies = Vec::new();
    for stamp in [
        "2026-11-22T23:02:55.563939+00:00",
        "2026-11-22T23:02:55.563Z",
        "2026-11-23T00:02:55+01:00",
    ] {
        let mut body = context();
        body["requestedAt"] = json!(stamp);
        bodies.push(body);
    }
    let mut nulls = context();
    for key in ["requestedAt", "sessionId", "parentTraceId", "spiffeId"] {
        nulls[key] = Value::Null;
    }
    nulls["someFutureField"] = json!({"x": [1, 2]});
    bodies.push(nulls);
    for body in bodies {
        let answer = send(&app, post("/api/resolve", body.to_string())).await;
        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.body);
    }
    let request = Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .body(Body::from(context().to_string()))
        .unwrap();
    assert_eq!(
        send(&app, request).await.status,
        StatusCode::OK,
        "no Content-Type at all"
    );
}

#[tokio::test]
async fn bad_bodies_get_a_400_naming_each_field() {
    let app = test_app().await;
    let mut wrong = context();
    wrong["userId"] = json!(7);
    wrong["resourceId"] = json!("");
    wrong["resourceKind"] = json!("public");
    wrong["requestedAt"] = json!("yesterday");
    wrong.as_object_mut().unwrap().remove("traceId");
    let answer = send(&app, post("/api/resolve", wrong.to_string())).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let body = answer.json();
    assert!(body["error"].is_string());
    assert_eq!(body["code"], "invalid_request");
    let details = body["details"].as_object().unwrap();
    let fields: Vec<&str> = details.keys().map(String::as_str).collect();
    for field in [
        "userId",
        "resourceId",
        "resourceKind",
        "requestedAt",
        "traceId",
    ] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    assert!(
        !answer.body.contains("yesterday") && !answer.body.contains("public"),
        "values are echoed: {}",
        answer.body
    );

    // Under the size limit, far over serde_json's nesting limit.
    let deep = "[".repeat(30_000) + &"]".repeat(30_000);
    for body in [
        "not json",
        "[]",
        "[1, 2]",
        "\"a string\"",
        "42",
        "null",
        "",
        "   ",
        "{",
        "{\"userId\": }",
        deep.as_str(),
    ] {
        for path in ["/api/resolve", "/api/migrate/resolve"] {
            let answer = send(&app, post(path, body.to_owned())).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{path} {:?}: {}",
                &body[..body.len().min(20)],
                answer.body
            );
            assert!(answer.json()["error"].is_string());
        }
    }
}

#[tokio::test]
async fn migration_flags_and_counts_are_typed() {
    let app = test_app().await;
    for (field, value) in [
        ("dryRun", json!("false")),
        ("batchIndex", json!(-1)),
        ("totalBatches", json!(0)),
        ("phase", json!("deploy")),
    ] {
        let mut body = migration();
        body[field] = value;
        let answer = send(&app, post("/api/migrate/resolve", body.to_string())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
        assert!(
            answer.json()["details"].get(field).is_some(),
            "{field}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn migration_resolves_both_sides() {
    let app = test_app().await;
    let answer = send(&app, post("/api/migrate/resolve", migration().to_string())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"migrationId": "m1", "phase": "load", "sourceCredentialId": "cred-ro",
               "sourceResolvedFor": "service", "targetCredentialId": "cred-rw",
               "targetResolvedFor": "service", "dryRun": false,
               // 2099-06-01T00:00+02:00 is earlier than 2099-05-31T23:00Z, though later as text.
               "expiresAt": "2099-05-31T22:00:00Z"})
    );
    let mut dry = migration();
    dry["dryRun"] = json!(true);
    let body = send(&app, post("/api/migrate/resolve", dry.to_string()))
        .await
        .json();
    assert_eq!(body["targetCredentialId"], "cred-ro");
}

#[tokio::test]
async fn denials_are_403_with_the_reason() {
    let app = test_app().await;
    let mut nobody = context();
    nobody["userId"] = json!("bob");
    let answer = send(&app, post("/api/resolve", nobody.to_string())).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["code"], "no_matching_rule");
    assert_eq!(answer.json()["error"], "no rule matches this request");

    // A store without the writer: the target of a load is refused, and the answer says so.
    let reads_only = CONFIG.replace(
        "credentialRef = \"shared-rw\"",
        "credentialRef = \"missing\"",
    );
    let loaded = load_str(
        &reads_only,
        Path::new("."),
        "test".into(),
        &|_| Some("k".into()),
        None,
    )
    .unwrap();
    let state = loaded
        .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap();
    let answer = send(
        &agent_identity_server::app::app(state),
        post("/api/migrate/resolve", migration().to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["side"], "target");
    assert_eq!(body["code"], "credential_not_found");
    assert!(
        body["error"].as_str().unwrap().starts_with("target: "),
        "{body}"
    );
    // The slot's name is never quoted: in some data it is the token itself.
    assert!(!body.to_string().contains("missing"), "{body}");
}

#[tokio::test]
async fn limits_and_unknown_routes_get_clear_answers() {
    let app = test_app().await;
    let huge = format!("{{\"userId\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
    let answer = send(&app, post("/api/resolve", huge.clone())).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["code"], "body_too_large");
    // Without a Content-Length (a streamed body), the limit holds too.
    let stream = futures::stream::iter(
        (0..160).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]))),
    );
    let request = Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .body(Body::from_stream(stream))
        .unwrap();
    assert_eq!(
        send(&app, request).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let request = Request::post("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "text/plain")
        .body(Body::from(context().to_string()))
        .unwrap();
    assert_eq!(
        send(&app, request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let answer = send(&app, get("/api/nothing")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["code"], "not_found");
    let answer = send(&app, get("/api/resolve")).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json()["code"], "method_not_allowed");
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused_before_the_body_is_read() {
    let app = test_app().await;
    for host in ["evil.example:3001", "127.0.0.1:9999", "localhost"] {
        let request = Request::post("/api/resolve")
            .header("host", host)
            .header("content-type", "application/json")
            .body(Body::from(context().to_string()))
            .unwrap();
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{host}");
        assert_eq!(answer.json()["code"], "host_not_allowed");
    }
    // A 10 MB body with a foreign Origin is refused as foreign, not as too large: the body is
    // never read.
    let request = Request::post("/api/resolve")
        .header("host", "localhost:3001")
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(Body::from(vec![b'{'; 10 * 1024 * 1024]))
        .unwrap();
    let answer = send(&app, request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["code"], "origin_not_allowed");
    for host in ["[::1]:3001", "LOCALHOST:3001"] {
        let request = Request::get("/health")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, request).await.status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn beyond_loopback_an_unauthenticated_server_answers_only_for_its_named_hosts() {
    let env = |_: &str| Some(CANARY.to_owned());
    let config = CONFIG.replace(
        "listen = \"127.0.0.1:3001\"",
        "listen = \"0.0.0.0:3001\"\nallow_unauthenticated = true",
    );
    // Without a list there is nothing to check a Host against: refused at load.
    let err = load_str(&config, Path::new("."), "test".into(), &env, None).unwrap_err();
    assert!(
        err.to_string().contains("server, field `allowed_hosts`"),
        "{err}"
    );
    for (extra, host, status) in [
        (
            "\nallowed_hosts = [\"sidecar.internal:3001\"]",
            "sidecar.internal:3001",
            StatusCode::OK,
        ),
        (
            "\nallowed_hosts = [\"sidecar.internal:3001\"]",
            "evil.example:3001",
            StatusCode::FORBIDDEN,
        ),
    ] {
        let config = config.replace(
            "body_limit_bytes = 65536",
            &format!("body_limit_bytes = 65536{extra}"),
        );
        let loaded = load_str(&config, Path::new("."), "test".into(), &env, None).unwrap();
        let bound = "0.0.0.0:3001".parse().unwrap();
        let app = app(loaded
            .into_state(Arc::new(Metrics::new()), bound)
            .await
            .unwrap());
        let request = Request::get("/health")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&app, request).await.status,
            status,
            "{host} with {extra:?}"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_and_resolutions_by_rule() {
    let app = test_app().await;
    send(&app, post("/api/resolve", context().to_string())).await;
    let mut nobody = context();
    nobody["userId"] = json!("bob");
    send(&app, post("/api/resolve", nobody.to_string())).await;
    let answer = send(&app, get("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = answer.body;
    assert!(text.contains(r#"agent_identity_resolutions_total{outcome="granted",rule="alice-personal",reason="",arm="primary"} 1"#), "{text}");
    assert!(text.contains(r#"agent_identity_resolutions_total{outcome="denied",rule="",reason="no_matching_rule",arm="primary"} 1"#), "{text}");
    assert!(text.contains(r#"agent_identity_http_requests_total{route="/api/resolve",method="POST",status="200"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"agent_identity_http_request_duration_seconds_bucket{le="+Inf",route="/api/resolve"} 2"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("alice\""),
        "a user id became a label: {text}"
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-zA-Z0-9 :+.\\-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "alice",
            "shared",
            "personal",
            "load",
            "dry-run",
            "2026-11-22T23:02:55Z",
            ""
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        let keys = prop::sample::select(vec![
            "userId",
            "resourceId",
            "resourceKind",
            "provider",
            "model",
            "action",
            "traceId",
            "requestedAt",
            "sessionId",
            "spiffeId",
            "phase",
            "migrationId",
            "sourceResourceId",
            "targetResourceId",
            "dryRun",
            "batchIndex",
            "totalBatches",
            "other",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.prop_map(str::to_owned), inner, 0..14)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_body_gets_a_5xx(value in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = test_app().await;
            for path in ["/api/resolve", "/api/migrate/resolve"] {
                for body in [value.to_string().into_bytes(), raw.clone()] {
                    let answer = send(&app, post(path, body)).await;
                    assert!(
                        answer.status.is_success() || answer.status == StatusCode::BAD_REQUEST || answer.status == StatusCode::FORBIDDEN,
                        "{path}: {} for {value}", answer.status
                    );
                    assert!(answer.json()["error"].is_string() || answer.status.is_success());
                }
            }
        });
    }
}
