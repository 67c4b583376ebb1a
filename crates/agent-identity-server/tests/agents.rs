//! Agents' own tools through the sidecar process: real client SDKs through the injection proxy,
//! and commands run by `agent-identity exec` with a credential in their environment only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::time::Duration;

mod support;
use support::{Sidecar, write_config};

/// A server of this test answering as the OpenAI chat completions API does, to the user's key
/// only; it remembers whether it ever saw the agent's own key. (The real API cannot be reached
/// here.)
async fn openai_like_upstream(
    key: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let saw_agents_key = std::sync::Arc::new(AtomicBool::new(false));
    let flag = saw_agents_key.clone();
    let completions = move |headers: http::HeaderMap, body: axum::body::Bytes| {
        let flag = flag.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if auth.contains("the-agents-own-key") {
                flag.store(true, Ordering::SeqCst);
            }
            if auth != format!("Bearer {key}") {
                let error = serde_json::json!({"error": {"message": "bad key", "type": "invalid_request_error"}});
                return (http::StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
            }
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if request["stream"] == true {
                let chunks = futures::stream::iter(["one ", "two ", "three"]).then(|piece| async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let chunk = serde_json::json!({"id": "c1", "object": "chat.completion.chunk",
                        "created": 0, "model": "gpt-4o",
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                    Ok::<_, std::io::Error>(format!("data: {chunk}\n\n"))
                });
                let done = futures::stream::once(async { Ok("data: [DONE]\n\n".to_owned()) });
                let body = axum::body::Body::from_stream(chunks.chain(done));
                return ([("content-type", "text/event-stream")], body).into_response();
            }
            axum::Json(
                serde_json::json!({"id": "c1", "object": "chat.completion", "created": 0,
                "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "hello alice"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}),
            )
            .into_response()
        }
    };
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/v1"), saw_agents_key)
}

#[tokio::test]
async fn the_openai_package_and_curl_work_through_the_proxy_and_never_see_the_key() {
    const KEY: &str = "sk-user-key-canary-91c4";
    let python = std::env::var("AGENT_IDENTITY_PYTHON")
        .expect("AGENT_IDENTITY_PYTHON must name a Python with openai installed (scripts/test.sh)");
    let (base, saw_agents_key) = openai_like_upstream(KEY).await;
    let config = write_config(
        "proxy",
        &format!(
            r#"
[stores.default]
type = "memory"
credentials = [{{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }}]
secrets = {{ openai-prod = {{ env = "OPENAI_KEY_OF_ALICE" }} }}

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
path_prefixes = ["/chat/completions"]
allow_http_loopback = true
"#
        ),
    );
    let sidecar = Sidecar::start(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("OPENAI_KEY_OF_ALICE", KEY), ("RUST_LOG", "trace")],
    )
    .await;
    let proxy = format!("http://{}/proxy/openai", sidecar.address);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/proxy_openai.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&proxy)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));

    // curl, with a key of its own that must not pass.
    let output = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-i",
            "-X",
            "POST",
            &format!("{proxy}/chat/completions"),
        ])
        .args([
            "-H",
            "x-agent-identity-user: alice",
            "-H",
            "authorization: Bearer sk-the-agents-own-key",
        ])
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"model":"gpt-4o","messages":[]}"#,
        ])
        .output()
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("hello alice") && !answer.contains(KEY),
        "{answer}"
    );
    // Another user has no rule: denied before any call.
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-X", "POST", &format!("{proxy}/chat/completions")])
        .args(["-H", "x-agent-identity-user: mallory", "-d", "{}"])
        .output()
        .await
        .unwrap();
    let denied = String::from_utf8_lossy(&output.stdout);
    assert!(denied.contains("no_matching_rule"), "{denied}");

    assert!(
        !saw_agents_key.load(std::sync::atomic::Ordering::SeqCst),
        "the agent's own key reached the upstream"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = sidecar.log.lock().unwrap().clone();
    assert!(log.contains("proxied call"), "no audit line");
    assert!(
        !log.contains(KEY),
        "the key is in the sidecar's log (RUST_LOG=trace)"
    );
}

/// A server of this test answering as the GitHub REST API does (`/user` and a repository's
/// issues), to Alice's token only; it remembers whether it ever saw anything else in
/// `authorization`. (The real API cannot be reached here.)
async fn github_like_upstream(
    token: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::response::IntoResponse;
    let seen = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
    let issues = std::sync::Arc::<std::sync::Mutex<Vec<serde_json::Value>>>::default();
    let check = {
        let seen = seen.clone();
        move |headers: &http::HeaderMap| {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            seen.lock().unwrap().push(auth.clone());
            auth == format!("Bearer {token}")
        }
    };
    let unauthorized = || {
        let body = serde_json::json!({"message": "Bad credentials", "status": "401"});
        (http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    };
    let user = {
        let check = check.clone();
        move |headers: http::HeaderMap| async move {
            if !check(&headers) {
                return unauthorized();
            }
            axum::Json(serde_json::json!({"login": "alice", "id": 1, "type": "User"}))
                .into_response()
        }
    };
    let create = {
        let (check, issues) = (check.clone(), issues.clone());
        move |headers: http::HeaderMap, body: axum::body::Bytes| async move {
            if !check(&headers) {
                return unauthorized();
            }
            let asked: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let mut issues = issues.lock().unwrap();
            let issue = serde_json::json!({"number": issues.len() + 1, "title": asked["title"],
                                           "state": "open"});
            issues.push(issue.clone());
            (http::StatusCode::CREATED, axum::Json(issue)).into_response()
        }
    };
    let list = move |headers: http::HeaderMap| async move {
        if !check(&headers) {
            return unauthorized();
        }
        axum::Json(serde_json::Value::Array(issues.lock().unwrap().clone())).into_response()
    };
    let app = axum::Router::new()
        .route("/user", axum::routing::get(user))
        .route(
            "/repos/alice/app/issues",
            axum::routing::get(list).post(create),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

#[tokio::test]
async fn pygithub_works_through_the_proxy_with_its_token_as_the_agents_key() {
    const TOKEN: &str = "ghp-alice-github-canary-5e1d";
    const AGENT_KEY: &str = "agent-key-of-alice-0123456789";
    let python = std::env::var("AGENT_IDENTITY_PYTHON").expect(
        "AGENT_IDENTITY_PYTHON must name a Python with PyGithub installed (scripts/test.sh)",
    );
    let (base, seen) = github_like_upstream(TOKEN).await;
    let config = write_config(
        "github",
        &format!(
            r#"
[auth]
mode = "api-key"

[[auth.api_keys]]
name = "alice-agent"
env = "ALICE_AGENT_KEY"
user_id = "alice"

[stores.default]
type = "memory"
credentials = [{{ id = "cred-github-alice", kind = "user-delegated", status = "active", ref = "github-alice" }}]
secrets = {{ github-alice = {{ env = "GITHUB_TOKEN_OF_ALICE" }} }}

[[rules]]
id = "github-for-alice"
credentialRef = "github-alice"
priority = 10
matchUserId = "alice"
matchProvider = "github"

[upstreams.github]
base_url = "{base}"
provider = "github"
methods = ["GET", "POST"]
path_prefixes = ["/user", "/repos/"]
allow_http_loopback = true
"#
        ),
    );
    let sidecar = Sidecar::start(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[
            ("GITHUB_TOKEN_OF_ALICE", TOKEN),
            ("ALICE_AGENT_KEY", AGENT_KEY),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let proxy = format!("http://{}/proxy/github", sidecar.address);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/proxy_github.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&proxy)
        .arg(AGENT_KEY)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));

    // Every call reached the upstream with Alice's token, none with the agent's key.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|auth| *auth == format!("Bearer {TOKEN}")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = sidecar.log.lock().unwrap().clone();
    assert_eq!(log.matches("proxied call").count(), 3, "{log}");
    assert!(!log.contains(TOKEN), "the token is in the sidecar's log");
    assert!(
        !log.contains(AGENT_KEY),
        "the agent's key is in the sidecar's log"
    );
}
