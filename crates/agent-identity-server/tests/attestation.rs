//! Attestations and canaries through the sidecar: `POST /api/resolve?attest=true` answers with
//! a statement that an independent JOSE library (Python's joserfc) verifies against the keys at
//! `/.well-known/jwks.json`; a tampered one, or one whose key is not published, is refused by it
//! too; a rotated key keeps older attestations verifiable; canary users are told so.
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
use identity_test_support::openssl_key;
use serde_json::{Value, json};
use tower::ServiceExt;

const SECRET: &str = "sk-attest-canary-93f1";
const AGENT_KEY: &str = "agent-key-attest-1";

fn config(key_id: &str, previous: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:3001"

[auth]
mode = "api-key"
[[auth.api_keys]]
name = "billing-agent"
env = "AGENT_KEY"
any_user = true

[attestation]
signing_key_file = "active.pem"
key_id = "{key_id}"
issuer = "https://identity.test"
ttl_seconds = 120
{previous}

[stores.default]
type = "memory"
secrets = {{ "openai-v1" = {{ env = "SECRET" }}, "openai-v2" = {{ env = "SECRET" }} }}

[[stores.default.credentials]]
id = "cred-v1"
kind = "fixed"
scope = "read"
status = "active"
ref = "openai-v1"

[[stores.default.credentials]]
id = "cred-v2"
kind = "fixed"
scope = "read"
status = "active"
ref = "openai-v2"

[[rules]]
id = "llm"
credentialRef = "openai-v1"
priority = 1
canary = {{ credentialRef = "openai-v2", weight = 25 }}
"#
    )
}

async fn test_app(dir: &Path, config: &str) -> axum::Router {
    let metrics = Arc::new(Metrics::new());
    let env = |name: &str| match name {
        "SECRET" => Some(SECRET.to_owned()),
        "AGENT_KEY" => Some(AGENT_KEY.to_owned()),
        _ => None,
    };
    let loaded = load_str(
        config,
        dir,
        "test".into(),
        &env,
        Some(Arc::new(MetricsObserver(metrics.clone()))),
    )
    .unwrap();
    app(loaded
        .into_state(metrics, "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap())
}

async fn send(app: &axum::Router, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {AGENT_KEY}"))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        !text.contains(SECRET),
        "a secret reached a response: {text}"
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn context(user: &str) -> Value {
    json!({"userId": user, "resourceId": "docs", "resourceKind": "shared", "provider": "openai",
           "model": "gpt-4o", "action": "read", "traceId": format!("trace-{user}")})
}

/// What joserfc says of `attestation` for `context` under `jwks`.
async fn joserfc(jwks: &Value, attestation: &str, context: &Value) -> Value {
    let python = std::env::var("AGENT_IDENTITY_PYTHON")
        .expect("AGENT_IDENTITY_PYTHON must name the Python that scripts/test.sh prepares");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/attestation.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = json!({"jwks": jwks, "attestation": attestation, "context": context,
                         "issuer": "https://identity.test"});
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(request.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn an_attested_resolution_verifies_with_joserfc_and_a_tampered_one_does_not() {
    let dir = tempdir();
    std::fs::write(dir.join("active.pem"), openssl_key("p256").0).unwrap();
    let app = test_app(&dir, &config("2026-11", "")).await;

    let (status, keys) = send(&app, "GET", "/.well-known/jwks.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys["keys"][0]["kid"], "2026-11");
    assert_eq!(keys["keys"][0]["alg"], "ES256");

    let ctx = context("alice");
    let (status, answer) = send(&app, "POST", "/api/resolve?attest=true", &ctx.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let attestation = answer["attestation"].as_str().unwrap();
    let seen = joserfc(&keys, attestation, &ctx).await;
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["header"]["kid"], "2026-11");
    assert_eq!(seen["header"]["alg"], "ES256");
    let claims = &seen["claims"];
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["caller"], "billing-agent");
    assert_eq!(claims["rule"], "llm");
    assert_eq!(claims["credentialId"], answer["credentialId"]);
    assert_eq!(claims["resolvedFor"], "service");
    assert_eq!(claims["traceId"], "trace-alice");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );

    // Another context: joserfc's digest check refuses it.
    let seen = joserfc(&keys, attestation, &context("bob")).await;
    assert_eq!(seen["error"], "context mismatch", "{seen}");
    // A payload changed (another user), signature kept: refused by the signature.
    let (_, other) = send(
        &app,
        "POST",
        "/api/resolve?attest=1",
        &context("mallory").to_string(),
    )
    .await;
    let mut parts: Vec<&str> = attestation.split('.').collect();
    parts[1] = other["attestation"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let seen = joserfc(&keys, &parts.join("."), &context("mallory")).await;
    assert_eq!(seen["ok"], false, "{seen}");
    assert_eq!(seen["error"], "BadSignatureError", "{seen}");
    // A key set without the signing key: refused.
    let stranger = agent_identity::identity_signing::SigningKey::generate(
        agent_identity::identity_signing::Algorithm::EdDsa,
        "2026-11",
    )
    .unwrap();
    let foreign = json!({"keys": [stranger.public_key().jwk()]});
    let seen = joserfc(&foreign, attestation, &ctx).await;
    assert_eq!(seen["ok"], false, "{seen}");

    // Without `attest`, no attestation; a bad value is a 400.
    let (_, plain) = send(&app, "POST", "/api/resolve", &ctx.to_string()).await;
    assert!(plain.get("attestation").is_none(), "{plain}");
    let (status, bad) = send(&app, "POST", "/api/resolve?attest=yes", &ctx.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["code"], "invalid_request");
}

#[tokio::test]
async fn a_rotated_key_keeps_earlier_attestations_verifiable() {
    let dir = tempdir();
    let (first, first_public) = openssl_key("ed25519");
    std::fs::write(dir.join("active.pem"), first).unwrap();
    let before = test_app(&dir, &config("2026-10", "")).await;
    let ctx = context("alice");
    let (_, answer) = send(
        &before,
        "POST",
        "/api/resolve?attest=true",
        &ctx.to_string(),
    )
    .await;
    let old = answer["attestation"].as_str().unwrap().to_owned();

    // Rotated: a new active key, the old one's public half published as a previous key.
    std::fs::write(dir.join("old.pub"), first_public).unwrap();
    std::fs::write(dir.join("active.pem"), openssl_key("p256").0).unwrap();
    let previous = "previous_keys = [{ key_id = \"2026-10\", file = \"old.pub\" }]";
    let after = test_app(&dir, &config("2026-11", previous)).await;
    let (_, keys) = send(&after, "GET", "/.well-known/jwks.json", "").await;
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["2026-11", "2026-10"]);
    let (_, answer) = send(&after, "POST", "/api/resolve?attest=true", &ctx.to_string()).await;
    let new = answer["attestation"].as_str().unwrap();
    assert_eq!(joserfc(&keys, &old, &ctx).await["ok"], true);
    assert_eq!(joserfc(&keys, new, &ctx).await["ok"], true);
    // Once the old key is dropped from the set, its attestations no longer verify.
    let current_only = json!({"keys": [keys["keys"][0].clone()]});
    assert_eq!(joserfc(&current_only, &old, &ctx).await["ok"], false);
}

#[tokio::test]
async fn canary_users_are_told_and_counted_by_arm() {
    let dir = tempdir();
    std::fs::write(dir.join("active.pem"), openssl_key("ed25519").0).unwrap();
    let app = test_app(&dir, &config("k", "")).await;
    let mut canary = 0;
    for n in 0..200 {
        let (status, answer) = send(
            &app,
            "POST",
            "/api/resolve",
            &context(&format!("user-{n}")).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        match answer.get("arm") {
            Some(arm) => {
                assert_eq!(arm, "canary");
                assert_eq!(answer["credentialId"], "cred-v2");
                canary += 1;
            }
            None => assert_eq!(answer["credentialId"], "cred-v1"),
        }
    }
    assert!(
        (20..=80).contains(&canary),
        "{canary} of 200 on a 25% canary"
    );
    let (_, metrics) = send(&app, "GET", "/metrics", "").await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(&format!(
            r#"agent_identity_resolutions_total{{outcome="granted",rule="llm",reason="",arm="canary"}} {canary}"#
        )),
        "{text}"
    );
}

#[tokio::test]
async fn attestation_keys_are_checked_when_the_configuration_is_read() {
    let dir = tempdir();
    std::fs::write(dir.join("active.pem"), "not a key").unwrap();
    let previous = "previous_keys = [{ key_id = \"k\", file = \"missing.pub\" }]";
    let env = |_: &str| Some(SECRET.to_owned());
    let err = load_str(&config("k", previous), &dir, "test".into(), &env, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("attestation, field `signing_key_file`"),
        "{err}"
    );
    assert!(err.contains("not a PEM document"), "{err}");
    assert!(
        err.contains("previous_keys[0]`: uses the active key's id"),
        "{err}"
    );
    // Asking for an attestation where none is configured is refused before resolving.
    let plain = config("k", "").replace("[attestation]", "[unused]");
    let plain = plain.split("[unused]").next().unwrap().to_owned()
        + &plain[plain.find("[stores.default]").unwrap()..];
    let app = test_app(&dir, &plain).await;
    let (status, answer) = send(
        &app,
        "POST",
        "/api/resolve?attest=true",
        &context("a").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["code"], "attestation_not_configured");
    let (status, _) = send(&app, "GET", "/.well-known/jwks.json", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A folder of this test's own for key files, removed when dropped.
struct KeyDir(std::path::PathBuf);

impl std::ops::Deref for KeyDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> KeyDir {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("agent-identity-attest-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    KeyDir(dir)
}
