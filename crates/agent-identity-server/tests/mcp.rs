//! The identity tools over MCP, with the official MCP Python SDK as the client: over stdio
//! (`agent-identity mcp`) and over streamable HTTP (`/mcp` on the sidecar, an OAuth-protected
//! resource whose bearer tokens oidc-provider issues).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use identity_test_support::{AuthorizationServer, ProtectedMcpServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod oauth_support;
mod support;
use support::{BINARY, Sidecar, python, write_config};

/// A secret that must never appear in what a tool answers.
const CANARY: &str = "sk-mcp-canary-0123456789";

/// A personal API token alice stores, which must never appear either.
const ALICE_TOKEN: &str = "KGAT_alice_0123456789abcdef";

/// Every tool, called once (`connect` for `github`, `explain` of a request to `openai`), then
/// `connect` for a provider that is not configured.
fn every_call() -> Value {
    json!([
        {"name": "whoami"},
        {"name": "connections"},
        {"name": "connect", "arguments": {"provider": "github", "scope": "repo"}},
        {"name": "credentials"},
        {"name": "explain", "arguments": {"provider": "openai", "model": "gpt-4o", "action": "chat"}},
        {"name": "approval_status"},
        {"name": "connect", "arguments": {"provider": "nowhere"}},
    ])
}

/// The stores and rules both transports serve: a fixed OpenAI key, GitHub (OAuth) and Kaggle
/// (API tokens) for users.
fn stores(public_url: &str) -> String {
    format!(
        r#"
[stores.default]
type = "memory"
credentials = [{{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }}]
secrets = {{ openai-prod = {{ env = "OPENAI_KEY" }} }}

[stores.users]
type = "oauth"
public_url = "{public_url}"
allow_http_loopback = true

[stores.users.providers.github]
preset = "github"
ref = "user-github"
client_id = "gh-client"
client_secret_env = "GITHUB_SECRET"
allowed_scopes = ["repo"]

[stores.users.providers.kaggle]
preset = "kaggle"
ref = "user-kaggle"

[[rules]]
id = "openai"
credentialRef = "openai-prod"
matchProvider = "openai"
priority = 2

[[rules]]
id = "github"
credentialRef = "user-github"
credentialKind = "user-delegated"
store = "users"
matchProvider = "github"
priority = 1

[[rules]]
id = "zoe-only"
credentialRef = "openai-prod"
matchProvider = "openai"
matchUserId = "zoe"
priority = 9

[[rules]]
id = "kaggle"
credentialRef = "user-kaggle"
credentialKind = "user-delegated"
store = "users"
matchProvider = "kaggle"
priority = 3
"#
    )
}

fn result<'a>(outcome: &'a Value, tool: &str) -> &'a Value {
    outcome["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == tool)
        .unwrap_or_else(|| panic!("no result of {tool}: {outcome}"))
}

fn connection<'a>(outcome: &'a Value, provider: &str) -> &'a Value {
    result(outcome, "connections")["structured"]["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == provider)
        .unwrap()
}

/// What every session must show, whoever it acts for.
fn assert_every_tool_answered(outcome: &Value, user: &str, public_url: &str) {
    assert_eq!(
        outcome["tools"],
        json!([
            "approval_status",
            "connect",
            "connections",
            "credentials",
            "explain",
            "whoami"
        ]),
        "{outcome}"
    );
    let results = outcome["results"].as_array().unwrap();
    for call in &results[..6] {
        assert_eq!(call["isError"], false, "{call}");
    }
    // A refusal is the tool's error, with the sidecar's code, for the model to read.
    assert_eq!(results[6]["isError"], true);
    assert_eq!(
        results[6]["structured"]["code"], "unknown_provider",
        "{}",
        results[6]
    );
    assert_eq!(result(outcome, "whoami")["structured"]["userId"], user);
    let link = &result(outcome, "connect")["structured"];
    assert!(
        link["connectUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{public_url}/oauth/github/connect?ticket=")),
        "{link}"
    );
    let rules = result(outcome, "credentials")["structured"]["rules"]
        .as_array()
        .unwrap();
    assert!(rules.len() >= 3);
    assert!(rules.iter().any(|r| r["credentialRef"] == "openai-prod"));
    // Another user's rule is not listed.
    assert!(rules.iter().all(|r| r["id"] != "zoe-only"), "{rules:?}");
    assert!(!outcome.to_string().contains("zoe"), "another user named");
    let explained = &result(outcome, "explain")["structured"];
    assert_eq!(explained["decidingRule"], "openai", "{explained}");
    assert_eq!(explained["credentialRef"], "openai-prod");
    // zoe's rule comes first for her; for anyone else it is not shown, nor who it is for.
    assert_eq!(explained["rules"][0]["matched"], false);
    assert!(!explained.to_string().contains("zoe"), "{explained}");
    let text = outcome.to_string();
    assert!(!text.contains(CANARY), "a secret in a tool's answer");
    assert!(
        !text.contains(ALICE_TOKEN),
        "a user's token in a tool's answer"
    );
    assert!(
        !text.contains("github-secret"),
        "a client secret in a tool's answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_calls_every_tool_over_stdio() {
    let public_url = "http://127.0.0.1:3001";
    let config = write_config("mcp-stdio", &stores(public_url));
    let (ok, out, err) = python_with_env(
        &[
            "stdio",
            BINARY,
            config.to_str().unwrap(),
            "alice",
            &every_call().to_string(),
        ],
        &[("OPENAI_KEY", CANARY), ("GITHUB_SECRET", "github-secret")],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let outcome: Value = serde_json::from_str(out.trim()).unwrap();
    assert_every_tool_answered(&outcome, "alice", public_url);
    assert_eq!(
        result(&outcome, "whoami")["structured"]["transport"],
        "stdio"
    );
    assert_eq!(connection(&outcome, "github")["connected"], false);
    assert_eq!(
        result(&outcome, "approval_status")["structured"]["approvals"],
        json!([])
    );
}

/// [`python`], with `env` set for the script and what it starts.
async fn python_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let python = std::env::var("AGENT_IDENTITY_PYTHON")
        .expect("AGENT_IDENTITY_PYTHON must name the Python that scripts/test.sh prepares");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_tools.py");
    let mut command = tokio::process::Command::new(python);
    command.arg(script).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("the MCP client did not finish in 60 s")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_calls_every_tool_over_http_as_the_tokens_user() {
    let server = AuthorizationServer::start().await;
    let port = identity_test_support::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let resource = format!("{public_url}/mcp");
    let config = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[auth]\nmode = \"jwt\"\n\n[auth.jwt]\n\
         issuer = \"{issuer}\"\naudience = [\"{resource}\"]\njwks_url = \"{issuer}/jwks\"\n\
         allow_http_loopback = true\n\n[mcp]\nresource = \"{resource}\"\nscopes = [\"identity\"]\n\n\
         [approvals]\nsigning_key_file = \"approvals.pem\"\n\n[[rules]]\nid = \"bank\"\n\
         credentialRef = \"openai-prod\"\nmatchProvider = \"bank\"\npriority = 4\n\
         requireApproval = {{ approvers = [\"carol\"] }}\n",
        stores(&public_url),
        issuer = server.issuer(),
    );
    let path = write_config("mcp-http", &config);
    std::fs::write(
        path.with_file_name("approvals.pem"),
        identity_test_support::ed25519_key_pair(5).0,
    )
    .unwrap();
    let sidecar = Sidecar::start(
        &["serve", "--config", path.to_str().unwrap()],
        &[("OPENAI_KEY", CANARY), ("GITHUB_SECRET", "github-secret")],
    )
    .await;
    let http = identity_test_support::http_client();

    // The resource's metadata names the authorization server.
    let metadata: Value = http
        .get(format!(
            "{public_url}/.well-known/oauth-protected-resource/mcp"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], resource);
    assert_eq!(metadata["authorization_servers"], json!([server.issuer()]));
    assert_eq!(metadata["scopes_supported"], json!(["identity"]));

    // Without a token: 401, pointing at the metadata.
    let calls = every_call().to_string();
    let (ok, out, err) = python("mcp_tools.py", &["http", &resource, "-", &calls]).await;
    assert!(ok, "{out}\n{err}");
    let refused: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(refused["httpError"], 401);
    assert_eq!(
        refused["wwwAuthenticate"],
        format!(
            "Bearer resource_metadata=\"{public_url}/.well-known/oauth-protected-resource/mcp\""
        )
    );
    // A token for another audience is refused the same way.
    let elsewhere = server
        .jwt_access_token("alice", "openid", "https://elsewhere.example")
        .await;
    let (_, out, _) = python("mcp_tools.py", &["http", &resource, &elsewhere, &calls]).await;
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap()["httpError"],
        401
    );

    // Alice stores a Kaggle token as herself; bob has none.
    let alice = server.jwt_access_token("alice", "openid", &resource).await;
    let bob = server.jwt_access_token("bob", "openid", &resource).await;
    let stored = http
        .post(format!("{public_url}/oauth/kaggle/token"))
        .bearer_auth(&alice)
        .json(&json!({"token": ALICE_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::OK);

    // Alice's agent asks for a call that needs carol's approval: it is held.
    let held = http
        .post(format!("{public_url}/api/resolve"))
        .bearer_auth(&alice)
        .json(
            &json!({"userId": "alice", "resourceId": "acct", "resourceKind": "personal",
            "provider": "bank", "model": "m", "action": "transfer", "traceId": "t"}),
        )
        .send()
        .await
        .unwrap();
    let held: Value = held.json().await.unwrap();
    assert_eq!(held["code"], "approval_required", "{held}");

    let (ok, out, err) = python("mcp_tools.py", &["http", &resource, &alice, &calls]).await;
    assert!(ok, "{out}\n{err}");
    let as_alice: Value = serde_json::from_str(out.trim()).unwrap();
    assert_every_tool_answered(&as_alice, "alice", &public_url);
    assert_eq!(
        result(&as_alice, "whoami")["structured"]["transport"],
        "http"
    );
    assert_eq!(connection(&as_alice, "kaggle")["connected"], true);
    let approvals = &result(&as_alice, "approval_status")["structured"]["approvals"];
    assert_eq!(approvals.as_array().unwrap().len(), 1, "{approvals}");
    assert_eq!(approvals[0]["state"], "pending");
    assert_eq!(approvals[0]["approvers"], json!(["carol"]));
    assert_eq!(approvals[0]["call"]["provider"], "bank");

    let (ok, out, err) = python("mcp_tools.py", &["http", &resource, &bob, &calls]).await;
    assert!(ok, "{out}\n{err}");
    let as_bob: Value = serde_json::from_str(out.trim()).unwrap();
    assert_every_tool_answered(&as_bob, "bob", &public_url);
    // Bob sees his own connections only: not alice's.
    assert_eq!(connection(&as_bob, "kaggle")["connected"], false);
    // And none of her held calls.
    assert_eq!(
        result(&as_bob, "approval_status")["structured"]["approvals"],
        json!([])
    );
    drop(sidecar);
}

#[test]
fn mcp_over_http_needs_jwt_callers_whose_audience_is_the_resource() {
    let check = |extra: &str| {
        let path = write_config(
            "mcp-check",
            &format!("{}\n{extra}", stores("http://127.0.0.1:3001")),
        );
        support::run(&["check", "--config", path.to_str().unwrap()])
    };
    let (code, out, _) = check("[mcp]\nresource = \"http://127.0.0.1:3001/mcp\"\n");
    assert_eq!(code, 1);
    assert!(
        out.contains("mcp, field `resource`: needs `[auth] mode = \"jwt\"`"),
        "{out}"
    );
    let jwt = "[auth]\nmode = \"jwt\"\n\n[auth.jwt]\nissuer = \"https://idp.example\"\naudience = [\"https://other.example\"]\njwks_url = \"https://idp.example/jwks\"\n";
    let (code, out, _) = check(&format!(
        "{jwt}\n[mcp]\nresource = \"http://127.0.0.1:3001/mcp\"\n"
    ));
    assert_eq!(code, 1);
    assert!(out.contains("is not among `[auth.jwt] audience`"), "{out}");
    let (code, out, _) = check(&format!(
        "{jwt}\n[mcp]\nresource = \"http://sidecar.example/mcp\"\n"
    ));
    assert_eq!(code, 1);
    assert!(out.contains("must be an https URL"), "{out}");
    let (code, out, _) = check(&format!(
        "{jwt}\n[mcp]\nresource = \"https://sidecar.example/tools\"\n"
    ));
    assert_eq!(code, 1);
    assert!(out.contains("must name the tools' path, `/mcp`"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_fronts_a_protected_mcp_server_with_each_users_token() {
    let server = AuthorizationServer::start().await;
    let protected = ProtectedMcpServer::start(server.issuer()).await;
    let resource = protected.resource();
    // A provider for the MCP server (its authorization server found from its metadata, a
    // client registered there), an upstream for it, and the rule between them.
    let extra = format!(
        r#"
[[rules]]
id = "crm"
credentialRef = "user-crm"
credentialKind = "user-delegated"
store = "users"
matchProvider = "crm"
priority = 3

[stores.users.providers.crm]
preset = "dcr"
ref = "user-crm"
resource = "{resource}"
scopes = ["crm:read", "offline_access"]
prompt = "consent"

[upstreams.crm]
base_url = "{origin}"
provider = "crm"
path_prefixes = ["/mcp"]
allow_http_loopback = true
"#,
        origin = protected.origin()
    );
    let sidecar = oauth_support::sidecar(&server, "mcp-proxy", &extra).await;
    let browser = oauth_support::browser();
    let (done, _) = oauth_support::connect(&browser, &server, &sidecar, "crm", "alice").await;
    assert!(
        done.status().is_success() || done.status().is_redirection(),
        "{}",
        done.status()
    );

    // The official MCP client, pointed at the proxy, as alice: the server sees alice's token.
    let calls = json!([{"name": "whoami"}]).to_string();
    let through = format!("{}/proxy/crm/mcp", sidecar.base);
    let (ok, out, err) = python("mcp_tools.py", &["proxy", &through, "alice", &calls]).await;
    assert!(ok, "{out}\n{err}");
    let outcome: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(outcome["tools"], json!(["whoami"]));
    assert_eq!(outcome["results"][0]["text"], "alice", "{outcome}");
    // Bob has not connected: the proxy refuses his calls; none reaches the server as alice.
    let (ok, _, _) = python("mcp_tools.py", &["proxy", &through, "bob", &calls]).await;
    assert!(!ok, "bob's call went through");
}
