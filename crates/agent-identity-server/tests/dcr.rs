//! The sidecar with a DCR store, against a real authorization server (oidc-provider): a slot's
//! credential is a token of a client the sidecar registered itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::Arc;

use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::load_str;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use identity_test_support::AuthorizationServer;
use serde_json::{Value, json};
use tower::ServiceExt;

fn dcr_config(issuer: &str) -> String {
    format!(
        r#"
[stores.mcp]
type = "dcr"
allow_http_loopback = true

[[stores.mcp.slots]]
ref = "crm-service"
issuer = "{issuer}"
scopes = ["crm:read"]
client_name = "sidecar-agent"

[[rules]]
id = "crm"
credentialRef = "crm-service"
credentialKind = "fixed"
store = "mcp"
priority = 1
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dcr_slot_resolves_over_http_with_a_client_registered_at_run_time() {
    let server = AuthorizationServer::start().await;
    let answer = resolve_once(&dcr_config(server.issuer()), &|_| None).await;
    assert_eq!(answer["credentialId"], "dcr:crm-service");
    assert!(answer["expiresAt"].is_string(), "{answer}");
}

async fn resolve_once(config: &str, env: &dyn Fn(&str) -> Option<String>) -> Value {
    let (status, answer) = resolve_status(config, env).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn resolve_status(config: &str, env: &dyn Fn(&str) -> Option<String>) -> (StatusCode, Value) {
    let loaded = load_str(config, Path::new("."), "test".into(), env, None).unwrap();
    let bound = "127.0.0.1:3001".parse().unwrap();
    let app = app(loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap());
    let body = json!({"userId": "alice", "resourceId": "crm", "resourceKind": "shared",
        "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t1"});
    let request = Request::builder()
        .method("POST")
        .uri("/api/resolve")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_with_a_pre_issued_client_gets_tokens_without_registering() {
    let server = AuthorizationServer::start().await;
    // oidc-provider knows `web-app` (secret `web-app-secret`) from its configuration.
    let config = dcr_config(server.issuer()).replace(
        "client_name = \"sidecar-agent\"",
        "client_id = \"web-app\"\nclient_secret_env = \"WEB_APP_SECRET\"",
    );
    let right = |name: &str| (name == "WEB_APP_SECRET").then(|| "web-app-secret".to_owned());
    let answer = resolve_once(&config, &right).await;
    assert_eq!(answer["credentialId"], "dcr:crm-service");
    // With another secret the same slot is refused: the pre-issued client is the one used,
    // never a client registered in its place.
    let wrong = |name: &str| (name == "WEB_APP_SECRET").then(|| "not-the-secret".to_owned());
    let (status, refused) = resolve_status(&config, &wrong).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.to_string().contains("invalid_client"), "{refused}");
    // A pre-issued client belongs to one issuer: with only a resource, it is refused at load.
    let by_resource = config.replace(
        &format!("issuer = \"{}\"", server.issuer()),
        "resource = \"http://127.0.0.1:9/mcp\"",
    );
    let err = load_str(&by_resource, Path::new("."), "test".into(), &right, None).unwrap_err();
    assert!(err.to_string().contains("slots[0].client_id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_clients_survive_a_restart_in_a_sealed_file() {
    let server = AuthorizationServer::start().await;
    let dir =
        std::env::temp_dir().join(format!("agent-identity-dcr-sidecar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    let config = dcr_config(server.issuer()).replace(
        "allow_http_loopback = true",
        &format!(
            "allow_http_loopback = true\nclients_file = {:?}\nclients_key_env = \"DCR_KEY\"",
            file.display().to_string()
        ),
    );
    let env = |name: &str| {
        (name == "DCR_KEY").then(|| "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned())
    };
    resolve_once(&config, &env).await;
    let first: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let client_id = first["clients"][0]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first["clients"][0]["sealed"]["ciphertext"].is_string());
    // A second sidecar with the same file uses the same client.
    resolve_once(&config, &env).await;
    let second: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(second["clients"].as_array().unwrap().len(), 1);
    assert_eq!(second["clients"][0]["client_id"], client_id.as_str());
    let missing_key =
        load_str(&config, Path::new("."), "test".into(), &|_| None, None).unwrap_err();
    assert!(missing_key.to_string().contains("DCR_KEY"), "{missing_key}");
}

#[test]
fn dcr_sections_are_checked_with_the_slot_and_field_named() {
    let load = |text: &str| {
        load_str(text, Path::new("."), "test".into(), &|_| None, None)
            .unwrap_err()
            .to_string()
    };
    let base = dcr_config("http://127.0.0.1:9");
    let no_loopback = load(&base.replace("allow_http_loopback = true", ""));
    assert!(
        no_loopback.contains("slots[0].issuer") && no_loopback.contains("http"),
        "{no_loopback}"
    );
    let both = load(&base.replace(
        "scopes = [\"crm:read\"]",
        "scopes = [\"crm:read\"]\nresource = \"https://mcp.example.com/mcp\"",
    ));
    assert!(
        both.contains("exactly one of `issuer` and `resource`"),
        "{both}"
    );
    let iat = load(&base.replace(
        "client_name = \"sidecar-agent\"",
        "initial_access_token_env = \"UNSET_IAT\"",
    ));
    assert!(iat.contains("UNSET_IAT"), "{iat}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_registered_client_through_vault() {
    use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
    let server = AuthorizationServer::start().await;
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let config = format!(
        "{}\n[stores.vault]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"kv\"\n\n[stores.vault.auth]\nmethod = \"token\"\ntoken_env = \"BAO_TOKEN\"\n",
        dcr_config(server.issuer()).replace(
            "allow_http_loopback = true",
            "allow_http_loopback = true\nclients_vault = \"vault\"\nclients_key_env = \"DCR_KEY\"",
        ),
        bao.address()
    );
    let env = |name: &str| match name {
        "DCR_KEY" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned()),
        "BAO_TOKEN" => Some(BAO_ROOT_TOKEN.to_owned()),
        _ => None,
    };
    // Replica one registers and keeps the client in Vault.
    resolve_once(&config, &env).await;
    let listed = |path: String| {
        let bao = &bao;
        async move {
            let answer = bao.ok("LIST", &path, None).await;
            answer["data"]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let issuers = listed("kv/metadata/agent-identity-clients/clients".into()).await;
    assert_eq!(issuers.len(), 1, "{issuers:?}");
    let profiles = listed(format!(
        "kv/metadata/agent-identity-clients/clients/{}",
        issuers[0]
    ))
    .await;
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    let entry = format!(
        "agent-identity-clients/clients/{}{}",
        issuers[0], profiles[0]
    );
    let first = bao.ok("GET", &format!("kv/data/{entry}"), None).await;
    let client_id = first["data"]["data"]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The secret is sealed: it is nowhere in the entry as text.
    assert!(
        first["data"]["data"]["sealed"]["ciphertext"].is_string(),
        "{first}"
    );
    assert!(!first.to_string().contains("client_secret\":\""), "{first}");
    // Replica two, started afresh, uses that client: no second registration, no new version.
    resolve_once(&config, &env).await;
    let second = bao.ok("GET", &format!("kv/data/{entry}"), None).await;
    assert_eq!(second["data"]["data"]["client_id"], client_id.as_str());
    assert_eq!(second["data"]["metadata"]["version"], 1, "{second}");
    // Without the key the clients cannot be kept there: refused at load, naming the field.
    let without_key = |name: &str| (name == "BAO_TOKEN").then(|| BAO_ROOT_TOKEN.to_owned());
    let err = load_str(&config, Path::new("."), "test".into(), &without_key, None).unwrap_err();
    assert!(err.to_string().contains("DCR_KEY"), "{err}");
    let unknown = config.replace("clients_vault = \"vault\"", "clients_vault = \"nowhere\"");
    let err = load_str(&unknown, Path::new("."), "test".into(), &env, None).unwrap_err();
    assert!(err.to_string().contains("clients_vault"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_with_a_key_and_no_secret_signs_its_token_requests() {
    use identity_test_support::{JWT_CLIENT_ID, ed25519_key_pair};
    let (pem, jwk) = ed25519_key_pair(21);
    let (other, _) = ed25519_key_pair(22);
    let server = AuthorizationServer::start_with_client_key(&jwk).await;
    let dir = std::env::temp_dir().join(format!("agent-identity-dcr-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("agent.pem"), &pem).unwrap();
    std::fs::write(dir.join("other.pem"), &other).unwrap();
    let config = dcr_config(server.issuer()).replace(
        "client_name = \"sidecar-agent\"",
        &format!(
            "client_id = \"{JWT_CLIENT_ID}\"\nprivate_key = {{ file = {:?}, algorithm = \"EdDSA\", key_id = \"agent-key-1\" }}",
            dir.join("agent.pem").display().to_string()
        ),
    );
    let answer = resolve_once(&config, &|_| None).await;
    assert_eq!(answer["credentialId"], "dcr:crm-service");
    // Signed with a key the server does not know for that client: refused, never registered
    // around.
    let (status, refused) =
        resolve_status(&config.replace("agent.pem", "other.pem"), &|_| None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused.to_string().contains("invalid_client"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}
