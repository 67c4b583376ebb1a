//! The sidecar with an AWS Secrets Manager store, against a real moto server: `import` writes the
//! reference's JSON there, and `resolve` finds it. AWS credentials reach the binary the way they
//! do in production, through the SDK's default chain (here, the environment).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::{Path, PathBuf};

use agent_identity_server::config::load_str;
use identity_test_support::{MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, Moto};

const BINARY: &str = env!("CARGO_BIN_EXE_agent-identity");

fn aws_config(endpoint: &str) -> String {
    format!(
        r#"
[stores.default]
type = "memory"

[stores.aws]
type = "aws"
region = "{MOTO_REGION}"
endpoint = "{endpoint}"
prefix = "agents/"
timeout_ms = 3000

[[rules]]
id = "openai"
credentialRef = "openai-prod"
credentialKind = "fixed"
store = "aws"
priority = 1
"#
    )
}

fn write_files(name: &str, config: &str) -> (PathBuf, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("agent-identity-aws-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("agent-identity.toml");
    std::fs::write(&config_path, config).unwrap();
    let credentials = dir.join("credentials.json");
    std::fs::write(
        &credentials,
        r#"[{"id":"cred-openai","kind":"fixed","name":"OpenAI","scope":"chat","status":"active","ref":"openai-prod"}]"#,
    )
    .unwrap();
    (config_path, credentials)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(BINARY)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_ACCESS_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("OPENAI_KEY", "sk-aws-canary")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_into_secrets_manager_then_resolve_from_it() {
    let moto = Moto::start().await;
    let (config, credentials) = write_files("import", &aws_config(&moto.endpoint()));
    let (config, credentials) = (config.to_str().unwrap(), credentials.to_str().unwrap());
    let (code, stdout, stderr) = run(&[
        "import",
        "--config",
        config,
        "--from",
        credentials,
        "--store",
        "aws",
        "--secret",
        "openai-prod=OPENAI_KEY",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 credential(s) written to store `aws`"),
        "{stdout}"
    );

    let context = r#"{"userId":"alice","resourceId":"docs","resourceKind":"shared","provider":"openai","model":"gpt-4o","action":"read","traceId":"t1"}"#;
    let (code, stdout, stderr) = run(&["resolve", "--config", config, "--context", context]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("cred-openai"), "{stdout}");
    assert!(!stdout.contains("canary") && !stderr.contains("canary"));
}

#[test]
fn aws_sections_are_checked_with_the_store_and_field_named() {
    let load = |text: &str| {
        load_str(text, Path::new("."), "test".into(), &|_| None, None)
            .unwrap_err()
            .to_string()
    };
    let base = aws_config("http://127.0.0.1:5000");
    let region = load(&base.replace(MOTO_REGION, "EU West"));
    assert!(
        region.contains("stores.aws") && region.contains("region"),
        "{region}"
    );
    let prefix = load(&base.replace("agents/", "agents:"));
    assert!(
        prefix.contains("stores.aws") && prefix.contains("prefix"),
        "{prefix}"
    );
    let window = load(&base.replace("timeout_ms = 3000", "recovery_window_days = 1"));
    assert!(window.contains("recovery_window_days"), "{window}");
    let unknown = load(&base.replace("timeout_ms = 3000", "timeout = 3"));
    assert!(unknown.contains("timeout"), "{unknown}");
}
