//! Agents' own tools through the sidecar process: real client SDKs through the injection proxy,
//! and commands run by `agent-identity exec` with a credential in their environment only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::time::Duration;

mod support;
use support::{Sidecar, python, write_config};

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
    let sidecar = Sidecar::serve(
        &config,
        &[("OPENAI_KEY_OF_ALICE", KEY), ("RUST_LOG", "trace")],
    )
    .await;
    let proxy = format!("http://{}/proxy/openai", sidecar.address);
    let (success, stdout, stderr) = python("proxy_openai.py", &[&proxy]).await;
    assert!(success, "{stdout}\n{stderr}");
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
    let sidecar = Sidecar::serve(
        &config,
        &[
            ("GITHUB_TOKEN_OF_ALICE", TOKEN),
            ("ALICE_AGENT_KEY", AGENT_KEY),
            ("RUST_LOG", "trace"),
        ],
    )
    .await;
    let proxy = format!("http://{}/proxy/github", sidecar.address);
    let (success, stdout, stderr) = python("proxy_github.py", &[&proxy, AGENT_KEY]).await;
    assert!(success, "{stdout}\n{stderr}");
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

/// GitHub may be delivered (its rule says `reveal`); OpenAI is proxy-only. The deployer's key
/// may receive secrets, the reader's may not; both act for Alice.
const EXEC_CONFIG: &str = r#"
[auth]
mode = "api-key"

[[auth.api_keys]]
name = "deployer"
env = "DEPLOYER_KEY"
user_id = "alice"
permissions = ["receive-secrets"]

[[auth.api_keys]]
name = "reader"
env = "READER_KEY"
user_id = "alice"

[stores.default]
type = "memory"
credentials = [
  { id = "cred-github", kind = "user-delegated", status = "active", ref = "github-alice" },
  { id = "cred-openai", kind = "fixed", status = "active", ref = "openai-prod" },
]
secrets = { github-alice = { env = "GITHUB_SECRET" }, openai-prod = { env = "OPENAI_SECRET" } }

[[rules]]
id = "github-for-alice"
credentialRef = "github-alice"
priority = 10
matchUserId = "alice"
matchProvider = "github"
delivery = "reveal"

[[rules]]
id = "openai"
credentialRef = "openai-prod"
priority = 10
matchProvider = "openai"
"#;

const GITHUB_SECRET: &str = "ghp-exec-delivered-canary-77a0";
const OPENAI_SECRET: &str = "sk-exec-proxy-only-canary-3b9e";
const DEPLOYER_KEY: &str = "deployer-key-0123456789abcdef";
const READER_KEY: &str = "reader-key-0123456789abcdef";
const ALICE_CONTEXT: &str = r#"{"userId":"alice","resourceId":"repo","resourceKind":"personal","model":"none","action":"read"}"#;

/// The environment every process of the exec tests gets: the stores' secrets and the keys.
const EXEC_ENV: [(&str, &str); 4] = [
    ("GITHUB_SECRET", GITHUB_SECRET),
    ("OPENAI_SECRET", OPENAI_SECRET),
    ("DEPLOYER_KEY", DEPLOYER_KEY),
    ("READER_KEY", READER_KEY),
];

/// A shell command for the child: it writes what it sees in `$1` (the variable, and whether its
/// parent, the exec process, has the secret in its own environment), then exits 7.
const CHILD: &str = r#"printf '%s\n' "${GITHUB_TOKEN-unset}" > "$1"; if tr '\0' '\n' < /proc/$PPID/environ | grep -q '^GITHUB_TOKEN='; then echo parent-has-it >> "$1"; fi; exit 7"#;

/// Runs `agent-identity exec` with `args` before `--` and the child after; its exit code, its
/// output, and what the child wrote (`None` when it never ran).
async fn exec(
    args: &[&str],
    env: &[(&str, &str)],
    name: &str,
) -> (Option<i32>, String, Option<String>) {
    let out =
        std::env::temp_dir().join(format!("agent-identity-exec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut command = tokio::process::Command::new(support::BINARY);
    command
        .arg("exec")
        .args(args)
        .arg("--")
        .args(["sh", "-c", CHILD, "sh"])
        .arg(&out);
    command
        .env_remove("AGENT_IDENTITY_TOKEN")
        .env_remove("GITHUB_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.code(),
        text,
        std::fs::read_to_string(&out).ok(),
    )
}

#[tokio::test]
async fn exec_puts_a_delivered_secret_in_the_childs_environment_only() {
    let config = write_config("exec", EXEC_CONFIG);
    let mut sidecar_env = EXEC_ENV.to_vec();
    sidecar_env.push(("RUST_LOG", "trace"));
    let sidecar = Sidecar::serve(&config, &sidecar_env).await;
    let url = format!("http://{}", sidecar.address);
    let sidecar_args = |binding: &'static str| {
        vec![
            "--sidecar".to_owned(),
            url.clone(),
            "--context".to_owned(),
            ALICE_CONTEXT.to_owned(),
            "--env".to_owned(),
            binding.to_owned(),
        ]
    };
    let args = sidecar_args("GITHUB_TOKEN=github");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Delivered: the child sees the variable, its parent does not have it, the child's exit
    // code comes back, and nothing printed holds the secret.
    let (code, output, seen) =
        exec(&args, &[("AGENT_IDENTITY_TOKEN", DEPLOYER_KEY)], "granted").await;
    assert_eq!(code, Some(7), "{output}");
    assert_eq!(seen.as_deref(), Some(format!("{GITHUB_SECRET}\n").as_str()));
    assert!(!output.contains(GITHUB_SECRET), "{output}");

    // A caller without the permission: nothing runs.
    let (code, output, seen) = exec(&args, &[("AGENT_IDENTITY_TOKEN", READER_KEY)], "reader").await;
    assert_eq!(code, Some(125), "{output}");
    assert!(
        output.contains("caller_may_not_receive_secrets"),
        "{output}"
    );
    assert_eq!(seen, None, "the command ran");
    // No token at all: the sidecar refuses, nothing runs.
    let (code, output, seen) = exec(&args, &[], "anonymous").await;
    assert_eq!(code, Some(125), "{output}");
    assert!(output.contains("401 unauthenticated"), "{output}");
    assert_eq!(seen, None, "the command ran");
    // A proxy-only credential, to a caller who may receive secrets: nothing runs.
    let args = sidecar_args("OPENAI_API_KEY=openai");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, output, seen) = exec(
        &args,
        &[("AGENT_IDENTITY_TOKEN", DEPLOYER_KEY)],
        "proxy-only",
    )
    .await;
    assert_eq!(code, Some(125), "{output}");
    assert!(output.contains("credential_not_deliverable"), "{output}");
    assert!(!output.contains(OPENAI_SECRET), "{output}");
    assert_eq!(seen, None, "the command ran");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = sidecar.log.lock().unwrap().clone();
    assert_eq!(log.matches("secret delivered").count(), 1, "{log}");
    assert_eq!(log.matches("delivery refused").count(), 2, "{log}");
    assert!(
        !log.contains(GITHUB_SECRET) && !log.contains(OPENAI_SECRET),
        "a secret is in the sidecar's log"
    );
    assert!(!log.contains(DEPLOYER_KEY), "a key is in the sidecar's log");
}

#[tokio::test]
async fn exec_with_a_configuration_resolves_here_under_the_same_rules() {
    let config = write_config("exec-local", EXEC_CONFIG);
    let config = config.to_str().unwrap();
    let args = [
        "--config",
        config,
        "--context",
        ALICE_CONTEXT,
        "--env",
        "GITHUB_TOKEN=github",
    ];
    let (code, output, seen) = exec(&args, &EXEC_ENV, "local").await;
    assert_eq!(code, Some(7), "{output}");
    assert_eq!(seen.as_deref(), Some(format!("{GITHUB_SECRET}\n").as_str()));

    let args = [
        "--config",
        config,
        "--context",
        ALICE_CONTEXT,
        "--env",
        "OPENAI_API_KEY=openai",
    ];
    let (code, output, seen) = exec(&args, &EXEC_ENV, "local-proxy-only").await;
    assert_eq!(code, Some(125), "{output}");
    assert!(output.contains("proxy-only"), "{output}");
    assert_eq!(seen, None, "the command ran");

    // Bad input is refused before anything runs: a malformed binding, a variable bound twice.
    for (binding, second, expected) in [
        ("GITHUB TOKEN=github", None, "--env `GITHUB TOKEN=github`"),
        (
            "GITHUB_TOKEN=github",
            Some("GITHUB_TOKEN=gitlab"),
            "given twice",
        ),
    ] {
        let mut args = vec![
            "--config",
            config,
            "--context",
            ALICE_CONTEXT,
            "--env",
            binding,
        ];
        if let Some(second) = second {
            args.extend(["--env", second]);
        }
        let (code, output, seen) = exec(&args, &EXEC_ENV, "bad").await;
        assert_eq!(code, Some(125), "{output}");
        assert!(output.contains(expected), "{output}");
        assert_eq!(seen, None, "the command ran");
    }
    // A command that does not exist: 127, as a shell says it.
    let output = std::process::Command::new(support::BINARY)
        .args([
            "exec",
            "--config",
            config,
            "--context",
            ALICE_CONTEXT,
            "--env",
            "GITHUB_TOKEN=github",
        ])
        .args(["--", "/nonexistent/agent-identity-tool"])
        .envs(EXEC_ENV)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
}
