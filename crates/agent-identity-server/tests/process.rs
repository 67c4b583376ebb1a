//! The `agent-identity` binary as a process: the reference's Python clients against it, the
//! reference's environment-variable mode, graceful shutdown, and the operator verbs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const BINARY: &str = env!("CARGO_BIN_EXE_agent-identity");

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sidecar/agent-identity.toml")
}

/// A sidecar process, stopped when dropped.
struct Sidecar {
    child: tokio::process::Child,
    address: String,
    /// Every line it logged after it started listening.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Sidecar {
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(BINARY);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("listening address=") {
                    return rest.trim().to_owned();
                }
            }
            panic!("the sidecar exited before listening");
        })
        .await
        .expect("the sidecar did not start listening in 20 s");
        // Keep draining the log so that the process never blocks on a full pipe.
        let log = std::sync::Arc::<std::sync::Mutex<String>>::default();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Self {
            child,
            address,
            log,
        }
    }

    fn port(&self) -> &str {
        self.address.rsplit(':').next().unwrap()
    }

    /// Sends SIGTERM, as an orchestrator stopping the sidecar does.
    fn signal_terminate(&self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_terminate();
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap()
    }
}

#[tokio::test]
async fn the_reference_python_clients_work_unchanged() {
    let python = std::env::var("AGENT_IDENTITY_PYTHON").expect(
        "AGENT_IDENTITY_PYTHON must name a Python with datacules-agent-identity==0.13.0, httpx and \
         pydantic installed; `bash scripts/test.sh` sets it up",
    );
    let config = example_config();
    let mut sidecar = Sidecar::start(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/clients.py");
    let base = format!("http://localhost:{}", sidecar.port());
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(&base)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python clients failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(sidecar.terminate().await.success());
}

const CREDENTIALS: &str = r#"[{"id":"cred-1","kind":"fixed","name":"n","scope":"read","status":"active","ref":"slot-1"}]"#;
const RULES: &str = r#"[{"id":"rule-1","description":"","credentialRef":"slot-1","credentialKind":"fixed","priority":1}]"#;

/// A sidecar configured the reference's way: environment variables only, an ephemeral port.
async fn env_sidecar() -> Sidecar {
    Sidecar::start(
        &["serve"],
        &[
            ("AGENT_IDENTITY_CREDENTIALS_JSON", CREDENTIALS),
            ("AGENT_IDENTITY_RULES_JSON", RULES),
            ("PORT", "0"),
        ],
    )
    .await
}

async fn http(address: &str, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn resolve_request(address: &str) -> String {
    let body = r#"{"userId":"u","resourceId":"r","resourceKind":"shared","provider":"openai","model":"m","action":"read","traceId":"t"}"#;
    format!(
        "POST /api/resolve HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn without_a_config_it_reads_the_reference_environment_on_loopback() {
    let mut sidecar = env_sidecar().await;
    assert!(
        sidecar.address.starts_with("127.0.0.1:"),
        "{}",
        sidecar.address
    );
    let response = http(&sidecar.address, &resolve_request(&sidecar.address)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#""credentialId":"cred-1""#),
        "{response}"
    );
    assert!(sidecar.terminate().await.success());
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    let mut sidecar = env_sidecar().await;
    let request = resolve_request(&sidecar.address);
    let (head, tail) = request.split_at(request.len() - 20);
    let mut stream = tokio::net::TcpStream::connect(&sidecar.address)
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    sidecar.signal_terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer accepted...
    assert!(
        tokio::net::TcpStream::connect(&sidecar.address)
            .await
            .is_err(),
        "still accepting after SIGTERM"
    );
    // ...but the request in flight completes.
    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = tokio::time::timeout(Duration::from_secs(20), sidecar.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unauthenticated_server_refuses_to_listen_beyond_loopback() {
    let config = example_config();
    let started = Instant::now();
    let (code, _, stderr) = run(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("allow_unauthenticated"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn version_and_help() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("agent-identity {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for verb in ["serve", "check", "resolve", "import"] {
        assert!(stdout.contains(verb), "{stdout}");
    }
}

fn write_config(name: &str, config: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("agent-identity-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent-identity.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn check_validates_and_lints() {
    let config = example_config();
    let (code, stdout, _) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("configuration valid: 3 rule(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 warning(s)"), "{stdout}");

    let linted = write_config(
        "lints",
        r#"
[stores.default]
type = "memory"
credentials = [
  { id = "used", kind = "fixed", status = "active", ref = "a" },
  { id = "unused", kind = "fixed", status = "active", ref = "b" },
]

[[rules]]
id = "everyone"
credentialRef = "a"
priority = 10

[[rules]]
id = "shadowed"
credentialRef = "a"
priority = 5
matchProvider = "openai"

[[rules]]
id = "reads"
credentialRef = "a"
priority = 1
matchAction = "read"

[[rules]]
id = "shared"
credentialRef = "missing"
priority = 1
matchResourceKind = "shared"
"#,
    );
    let (code, stdout, _) = run(&["check", "--config", linted.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    for expected in [
        "rule `shadowed` can never win: rule `everyone`",
        "credential `unused` (ref `b`) of store `default` is named by no rule",
        "rule `shared` names credential `missing`",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let (code, _, _) = run(&[
        "check",
        "--config",
        linted.to_str().unwrap(),
        "--deny-warnings",
    ]);
    assert_eq!(code, 1);

    let broken = write_config(
        "broken",
        "[[rules]]\nid = \"r\"\ncredentialRef = \"a\"\nmatchProvider = \"\"\n",
    );
    let (code, stdout, _) = run(&["check", "--config", broken.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("rule `r`, field `priority`"), "{stdout}");
    assert!(
        stdout.contains("rule `r`, field `matchProvider`"),
        "{stdout}"
    );
}

#[test]
fn resolve_explains_one_context() {
    let config = example_config();
    let granted = r#"{"userId":"user-alice","resourceId":"crm","resourceKind":"personal","provider":"openai","model":"gpt-4o","action":"read","traceId":"t"}"#;
    let (code, stdout, stderr) = run(&[
        "resolve",
        "--config",
        config.to_str().unwrap(),
        "--context",
        granted,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let explanation: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(explanation["outcome"]["outcome"], "granted");
    assert_eq!(explanation["outcome"]["ruleId"], "rule-alice");
    assert_eq!(explanation["rules"].as_array().unwrap().len(), 3);
    assert_eq!(
        explanation["rules"][1]["mismatches"][0]["field"],
        "matchResourceKind"
    );

    let denied = granted.replace("user-alice", "user-bob");
    let (code, stdout, _) = run(&[
        "resolve",
        "--config",
        config.to_str().unwrap(),
        "--context",
        &denied,
    ]);
    assert_eq!(code, 1);
    assert!(stdout.contains("no_matching_rule"), "{stdout}");

    let (code, _, stderr) = run(&[
        "resolve",
        "--config",
        config.to_str().unwrap(),
        "--context",
        "{}",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("`userId` is missing"), "{stderr}");
}

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
