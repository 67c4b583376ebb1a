//! The sidecar with a Vault store, against a real OpenBao server: configuration, resolution over
//! HTTP, and `agent-identity import`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::load_str;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
use serde_json::{Value, json};
use tower::ServiceExt;

const BINARY: &str = env!("CARGO_BIN_EXE_agent-identity");

fn vault_config(address: &str) -> String {
    format!(
        r#"
[stores.default]
type = "memory"

[stores.vault]
type = "vault"
address = "{address}"
mount = "kv"
prefix = "agents"
cache_ttl_secs = 5

[stores.vault.auth]
method = "token"
token_env = "BAO_TOKEN"

[[rules]]
id = "openai"
credentialRef = "openai-prod"
credentialKind = "fixed"
store = "vault"
priority = 1
"#
    )
}

fn env(name: &str) -> Option<String> {
    (name == "BAO_TOKEN").then(|| BAO_ROOT_TOKEN.to_owned())
}

async fn vault_with_openai() -> OpenBao {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    bao.ok(
        "POST",
        "kv/data/agents/openai-prod",
        Some(
            json!({"data": {"id": "cred-openai", "kind": "fixed", "status": "active",
            "scope": "chat", "ref": "openai-prod", "secret": "sk-vault-canary"}}),
        ),
    )
    .await;
    bao
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_store_serves_resolutions_over_http_without_the_secret() {
    let bao = vault_with_openai().await;
    let loaded = load_str(
        &vault_config(&bao.address()),
        Path::new("."),
        "test".into(),
        &env,
        None,
    )
    .unwrap();
    assert!(loaded.writers.contains_key("vault"));
    let bound = "127.0.0.1:3001".parse().unwrap();
    let app = app(loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap());
    let body = json!({"userId": "alice", "resourceId": "docs", "resourceKind": "shared",
        "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t1"});
    let (status, text) = call(&app, "POST", "/api/resolve", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["credentialId"], "cred-openai");
    assert!(!text.contains("sk-vault-canary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_while_vault_is_down_and_back_when_it_returns() {
    let mut bao = vault_with_openai().await;
    let loaded = load_str(
        &vault_config(&bao.address()),
        Path::new("."),
        "test".into(),
        &env,
        None,
    )
    .unwrap();
    let bound = "127.0.0.1:3001".parse().unwrap();
    let state = loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap();
    let monitoring = tokio::spawn(state.health.clone().run(Duration::from_millis(100)));
    let app = app(state);
    let health = || call(&app, "GET", "/health", None);
    assert_eq!(health().await.0, StatusCode::OK);

    bao.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, text) = health().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["unavailableStores"], json!(["vault"]));

    // Back, but empty (dev mode): without its mount the store is still not usable.
    bao.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(health().await.0, StatusCode::SERVICE_UNAVAILABLE);
    bao.enable_kv2("kv").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, text) = health().await;
    assert_eq!(status, StatusCode::OK, "{text}");
    monitoring.abort();
}

#[test]
fn vault_sections_are_checked_with_the_store_and_field_named() {
    let load = |text: &str, env: &dyn Fn(&str) -> Option<String>| {
        load_str(text, Path::new("."), "test".into(), env, None)
            .unwrap_err()
            .to_string()
    };
    let base = vault_config("http://127.0.0.1:8200");
    let unset = load(&base, &|_| None);
    assert!(
        unset.contains("stores.vault") && unset.contains("BAO_TOKEN"),
        "{unset}"
    );
    let escaping = base.replace(r#"prefix = "agents""#, r#"prefix = "../sys""#);
    let err = load(&escaping, &env);
    assert!(
        err.contains("stores.vault") && err.contains("prefix"),
        "{err}"
    );
    let both = base.replace(
        "mount = \"kv\"",
        "mount = \"kv\"\naddress_env = \"VAULT_ADDR\"",
    );
    let err = load(&both, &env);
    assert!(
        err.contains("exactly one of `address` and `address_env`"),
        "{err}"
    );
    let unknown = base.replace("mount = \"kv\"", "mount = \"kv\"\nmonut = \"typo\"");
    let err = load(&unknown, &env);
    assert!(err.contains("monut"), "{err}");
    let approle = base.replace(
        "method = \"token\"\ntoken_env = \"BAO_TOKEN\"",
        "method = \"approle\"\nrole_id = \"r\"",
    );
    let err = load(&approle, &env);
    assert!(
        err.contains("auth.secret_id_env") && err.contains("VAULT_SECRET_ID"),
        "{err}"
    );
}

fn write_files(name: &str, config: &str, credentials: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "agent-identity-import-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("agent-identity.toml");
    std::fs::write(&config_path, config).unwrap();
    let credentials_path = dir.join("credentials.json");
    std::fs::write(&credentials_path, credentials).unwrap();
    (config_path, credentials_path)
}

fn import(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(BINARY)
        .arg("import")
        .args(args)
        .env("BAO_TOKEN", BAO_ROOT_TOKEN)
        .env("OPENAI_KEY", "sk-imported-canary")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const CREDENTIALS: &str = r#"[
  {"id":"cred-openai","kind":"fixed","name":"OpenAI","scope":"chat","status":"active","ref":"openai-prod"},
  {"id":"cred-github","kind":"user-delegated","status":"pending","ref":"github/alice"}
]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_writes_the_reference_json_and_never_wipes_a_stored_secret() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let (config, credentials) = write_files("ok", &vault_config(&bao.address()), CREDENTIALS);
    let (config, credentials) = (config.to_str().unwrap(), credentials.to_str().unwrap());
    let entry = |path: &'static str| {
        let bao = &bao;
        async move {
            bao.api("GET", &format!("kv/data/agents/{path}"), None)
                .await
        }
    };

    let with_secret = [
        "--config",
        config,
        "--from",
        credentials,
        "--store",
        "vault",
        "--secret",
        "openai-prod=OPENAI_KEY",
    ];
    // A dry run checks everything and writes nothing.
    let (code, stdout, stderr) = import(&[&with_secret[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("would write `openai-prod`"), "{stdout}");
    assert_eq!(entry("openai-prod").await.0, 404);

    let (code, stdout, stderr) = import(&with_secret);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("2 credential(s) written to store `vault`, 0 failed"),
        "{stdout}"
    );
    assert!(!stdout.contains("canary") && !stderr.contains("canary"));
    let (_, openai) = entry("openai-prod").await;
    assert_eq!(openai["data"]["data"]["secret"], "sk-imported-canary");
    assert_eq!(openai["data"]["data"]["scope"], "chat");
    let (_, github) = entry("github/alice").await;
    assert_eq!(github["data"]["data"]["status"], "pending");
    assert!(github["data"]["data"].get("secret").is_none());

    // Metadata imported again, without secrets: the stored secret stays.
    let renamed = CREDENTIALS.replace("\"name\":\"OpenAI\"", "\"name\":\"OpenAI (renamed)\"");
    let (config2, credentials2) = write_files("again", &config_text_of(config), &renamed);
    let (code, stdout, _) = import(&[
        "--config",
        config2.to_str().unwrap(),
        "--from",
        credentials2.to_str().unwrap(),
        "--store",
        "vault",
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("wrote `openai-prod` (stored secret kept)"),
        "{stdout}"
    );
    let (_, openai) = entry("openai-prod").await;
    assert_eq!(openai["data"]["data"]["secret"], "sk-imported-canary");
    assert_eq!(openai["data"]["data"]["name"], "OpenAI (renamed)");
}

fn config_text_of(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_bad_input_before_writing_anything() {
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let (config, credentials) = write_files("bad", &vault_config(&bao.address()), CREDENTIALS);
    let (config, credentials) = (config.to_str().unwrap(), credentials.to_str().unwrap());
    for (args, says) in [
        (
            vec!["--store", "vault", "--secret", "openai-prod=UNSET_VARIABLE"],
            "`UNSET_VARIABLE` is not set",
        ),
        (
            vec!["--store", "vault", "--secret", "nobody=OPENAI_KEY"],
            "no credential",
        ),
        (
            vec!["--store", "vault", "--secret", "openai-prod"],
            "REF=VARIABLE",
        ),
        (
            vec!["--store", "default"],
            "not a store that persists writes",
        ),
        (vec!["--store", "missing"], "configured: vault"),
    ] {
        let mut all = vec!["--config", config, "--from", credentials];
        all.extend(args);
        let (code, stdout, stderr) = import(&all);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("nothing was written"),
            "{stderr}"
        );
    }
    let (status, listed) = bao.api("LIST", "kv/metadata/agents", None).await;
    assert_eq!(status, 404, "something was written: {listed}");
    let (bad_config, bad_json) =
        write_files("badjson", &vault_config(&bao.address()), "[{\"id\":\"x\"}]");
    let (code, _, stderr) = import(&[
        "--config",
        bad_config.to_str().unwrap(),
        "--from",
        bad_json.to_str().unwrap(),
        "--store",
        "vault",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("credentials.json"), "{stderr}");
}

/// A `vault-dynamic` store beside a Vault store: each delivery is a new database login that
/// works on the real PostgreSQL behind OpenBao's database engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_dynamic_store_delivers_a_working_database_login_per_resolution() {
    let postgres = identity_test_support::PostgresServer::start();
    let bao = OpenBao::start().await;
    postgres.serve_logins_through(&bao).await;
    let config = format!(
        r#"
[stores.default]
type = "memory"

[stores.vault]
type = "vault"
address = "{}"

[stores.vault.auth]
method = "token"
token_env = "BAO_TOKEN"

[stores.db]
type = "vault-dynamic"
vault = "vault"
mount = "database"

[[rules]]
id = "reports"
credentialRef = "reader"
store = "db"
delivery = "reveal"
priority = 1

[auth]
mode = "api-key"

[[auth.api_keys]]
name = "reporting-job"
env = "JOB_KEY"
any_user = true
permissions = ["receive-secrets"]
"#,
        bao.address()
    );
    let env = |name: &str| match name {
        "BAO_TOKEN" => Some(BAO_ROOT_TOKEN.to_owned()),
        "JOB_KEY" => Some("reporting-job-key-0123456789".to_owned()),
        _ => None,
    };
    let loaded = load_str(&config, Path::new("."), "test".into(), &env, None).unwrap();
    let app = app(loaded
        .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
        .await
        .unwrap());
    let body = json!({"userId": "alice", "resourceId": "warehouse", "resourceKind": "shared",
        "provider": "postgres", "model": "m", "action": "read", "traceId": "t1"});
    let deliver = || {
        Request::post("/api/deliver")
            .header("host", "127.0.0.1:3001")
            .header("content-type", "application/json")
            .header("x-api-key", "reporting-job-key-0123456789")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let mut logins = Vec::new();
    for _ in 0..2 {
        let response = app.clone().oneshot(deliver()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(
            answer["credentialId"]
                .as_str()
                .unwrap()
                .starts_with("database/creds/reader/"),
            "{answer}"
        );
        let login: Value = serde_json::from_str(answer["secret"].as_str().unwrap()).unwrap();
        let (user, password) = (
            login["username"].as_str().unwrap().to_owned(),
            login["password"].as_str().unwrap().to_owned(),
        );
        postgres.log_in(&user, &password).unwrap();
        logins.push(user);
    }
    assert_ne!(logins[0], logins[1], "each resolution makes its own login");
    // A vault-dynamic store names a Vault store that exists.
    let broken = config.replace("vault = \"vault\"", "vault = \"nowhere\"");
    let err = load_str(&broken, Path::new("."), "test".into(), &env, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `vault`: names no store of type \"vault\": `nowhere`"),
        "{err}"
    );
}
