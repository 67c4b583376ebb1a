//! A tool call's round trip with the identity tools, the MCP client (rmcp) and the server on
//! this machine:
//!
//! - `tool_call/stdio`: `whoami` to `agent-identity mcp` over its standard input and output.
//! - `tool_call/http`: `whoami` to `/mcp` on a running sidecar, with a bearer JWT it verifies.
//! - `baseline/http_health`: `GET /health` on the same sidecar: the HTTP round trip a tool call
//!   over HTTP is compared with, in the same run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_agent-identity");

/// A configuration serving the tools at `/mcp` on `port` for JWTs signed by `key`; its path.
fn configuration(port: u16, key: &SigningKey) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("agent-identity-mcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "bench",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes())});
    std::fs::write(dir.join("jwks.json"), json!({"keys": [jwk]}).to_string()).unwrap();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
log_format = "json"

[stores.default]
type = "memory"
credentials = [{{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }}]
secrets = {{ openai-prod = {{ env = "BENCH_OPENAI_KEY" }} }}

[[rules]]
id = "openai"
credentialRef = "openai-prod"
priority = 1

[auth]
mode = "jwt"

[auth.jwt]
issuer = "https://issuer.example"
audience = ["{resource}"]
algorithms = ["EdDSA"]
jwks_file = "jwks.json"

[mcp]
resource = "{resource}"
"#
    );
    let path = dir.join("agent-identity.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn token(key: &SigningKey, audience: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "https://issuer.example", "aud": audience, "sub": "alice",
        "iat": now, "exp": now + 3600});
    let der = key.to_pkcs8_der().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("bench".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    agent_identity::identity_http::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::from_bytes(&[9; 32]);
    let port = identity_test_support::free_port();
    let config = configuration(port, &key);
    let base = format!("http://127.0.0.1:{port}");
    let _sidecar = runtime.block_on(async {
        let sidecar = tokio::process::Command::new(BINARY)
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("BENCH_OPENAI_KEY", "sk-bench")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if reqwest::get(format!("{base}/health")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sidecar
    });
    let (stdio, http, plain) = runtime.block_on(async {
        let mut command = tokio::process::Command::new(BINARY);
        command
            .args([
                "mcp",
                "--config",
                config.to_str().unwrap(),
                "--user",
                "alice",
            ])
            .env("BENCH_OPENAI_KEY", "sk-bench");
        let stdio = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
        let resource = format!("{base}/mcp");
        let transport = StreamableHttpClientTransport::with_client(
            reqwest::Client::new(),
            StreamableHttpClientTransportConfig::with_uri(resource.clone())
                .auth_header(token(&key, &resource)),
        );
        let http = ().serve(transport).await.unwrap();
        (stdio, http, reqwest::Client::new())
    });
    let mut group = c.benchmark_group("mcp");
    group.bench_function("tool_call/stdio", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                stdio
                    .call_tool(CallToolRequestParams::new("whoami"))
                    .await
                    .unwrap(),
            )
        });
    });
    group.bench_function("tool_call/http", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                http.call_tool(CallToolRequestParams::new("whoami"))
                    .await
                    .unwrap(),
            )
        });
    });
    let health = format!("{base}/health");
    group.bench_function("baseline/http_health", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                plain
                    .get(&health)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
