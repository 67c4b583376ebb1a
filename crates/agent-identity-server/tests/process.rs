//! The `agent-identity` binary as a process: the reference's Python clients against it, the
//! reference's environment-variable mode, graceful shutdown, and the operator verbs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{Sidecar, example_config, python, run, write_config};

#[tokio::test]
async fn the_reference_python_clients_work_unchanged() {
    let config = example_config();
    let mut sidecar = Sidecar::serve(&config, &[]).await;
    let base = format!("http://localhost:{}", sidecar.port());
    let (success, stdout, stderr) = python("clients.py", &[&base]).await;
    assert!(success, "python clients failed:\n{stdout}\n{stderr}");
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
  { id = "unused", kind = "fixed", status = "active", ref = "b", delivery = "reveal" },
]

[[rules]]
id = "everyone"
credentialRef = "a"
priority = 10
delivery = "reveal"

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

[[rules]]
id = "token-as-ref"
credentialRef = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
priority = 0
matchModel = "gpt-4o"

[[rules]]
id = "billing-workload"
credentialRef = "a"
priority = 0
matchSpiffeId = "spiffe://prod/billing"
"#,
    );
    let (code, stdout, _) = run(&["check", "--config", linted.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    for expected in [
        "rule `shadowed` can never win: rule `everyone`",
        "credential `unused` (ref `b`) of store `default` is named by no rule",
        "rule `shared` names credential `missing`",
        "rule `everyone` says `delivery = \"reveal\"`, but no caller holds `receive-secrets`",
        "credential `unused` says `delivery = \"reveal\"`",
        "rule `token-as-ref`: its credential ref looks like a secret",
        "rule `token-as-ref` names credential (a ref shaped like a secret, not shown)",
        "rule `billing-workload` matches a workload (`matchSpiffeId`), but no caller authenticates",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("ghp_16C7e42F"), "{stdout}");
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
