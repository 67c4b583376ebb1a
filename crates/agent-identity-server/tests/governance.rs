//! Governance at the call, through the sidecar in process: approvals of proxied calls (held,
//! approved by another caller, passed once, bound to the exact call, notified to a webhook,
//! signed, break-glass), and Cedar permission policies (`/api/authorize`, denials naming the
//! policies, reload, load errors naming the policy). The upstream and the webhook are small
//! local servers of this test: the real ones cannot be reached here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_identity::identity_approval::ApprovalVerifier;
use agent_identity_server::app::app;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::config::load_str;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const BANK_KEY: &str = "sk-bank-canary-5150";

/// A local server recording each request's path and body, answering `{"ok": true}`.
async fn recorder() -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |uri: http::Uri, body: String| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push((uri.path().to_owned(), body));
            axum::Json(json!({"ok": true}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

fn key_of(name: &str) -> String {
    format!("the-api-key-of-{name}-0123456789")
}

fn env(name: &str) -> Option<String> {
    match name {
        "BANK_KEY" => Some(BANK_KEY.into()),
        other => other
            .strip_suffix("_KEY")
            .map(|who| key_of(&who.to_ascii_lowercase())),
    }
}

const CALLERS: &str = r#"
[auth]
mode = "api-key"

[[auth.api_keys]]
name = "agent"
env = "AGENT_KEY"
any_user = true
permissions = ["approve"]

[[auth.api_keys]]
name = "bob"
env = "BOB_KEY"
any_user = true
permissions = ["approve"]

[[auth.api_keys]]
name = "oncall"
env = "ONCALL_KEY"
any_user = true
permissions = ["break-glass"]
"#;

fn approvals_config(upstream: &str, webhook: &str) -> String {
    format!(
        r#"
[stores.default]
type = "memory"
credentials = [{{ id = "cred-bank", kind = "fixed", name = "Bank", scope = "transfers", status = "active", ref = "bank-prod" }}]
secrets = {{ bank-prod = {{ env = "BANK_KEY" }} }}

[[rules]]
id = "bank-transfers"
credentialRef = "bank-prod"
priority = 10
matchProvider = "bank"
requireApproval = {{ breakGlass = true }}

[upstreams.bank]
base_url = "{upstream}/v1"
provider = "bank"
methods = ["POST"]
path_prefixes = ["/transfers"]
allow_http_loopback = true

[approvals]

[notifications]
webhook_url = "{webhook}/hook"
allow_http_loopback = true
{CALLERS}"#
    )
}

async fn sidecar_of(text: &str, base: &Path) -> axum::Router {
    let loaded = load_str(text, base, "test".into(), &env, None).unwrap();
    let bound = "127.0.0.1:3001".parse().unwrap();
    app(loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap())
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    caller: &str,
    user: &str,
    body: &str,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/json")
        .header("x-api-key", key_of(caller))
        .header("x-agent-identity-user", user)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn transfer(app: &axum::Router, user: &str, path: &str, body: &str) -> (StatusCode, Value) {
    send(
        app,
        "POST",
        &format!("/proxy/bank{path}"),
        "agent",
        user,
        body,
    )
    .await
}

/// The webhook's events of kind `event`, waited for (it is sent in the background).
async fn events(seen: &Arc<Mutex<Vec<(String, String)>>>, event: &str, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found: Vec<Value> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, body)| serde_json::from_str::<Value>(body).ok())
            .filter(|value| value["event"] == event)
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the webhook did not receive {count} `{event}` event(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_call_is_held_until_another_caller_approves_it_then_passes_once() {
    let (upstream, calls) = recorder().await;
    let (webhook, hooks) = recorder().await;
    let app = sidecar_of(&approvals_config(&upstream, &webhook), Path::new(".")).await;
    let order = r#"{"amount": 10, "to": "acct-1"}"#;

    let (status, held) = transfer(&app, "alice", "/transfers", order).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{held}");
    assert_eq!(held["code"], "approval_required", "{held}");
    let id = held["approvalId"].as_str().unwrap().to_owned();
    assert!(
        held["summary"]
            .as_str()
            .unwrap()
            .contains("POST bank/transfers for alice"),
        "{held}"
    );
    assert!(
        calls.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );

    // The webhook is told, in a body a chat tool takes.
    let pending = events(&hooks, "approval_pending", 1).await;
    assert_eq!(pending[0]["approval"]["id"], id.as_str());
    assert!(pending[0]["text"].as_str().unwrap().contains(&id));
    assert!(!pending[0].to_string().contains(BANK_KEY));

    // The agent asked: it cannot approve, although it holds the approver permission.
    let (status, refused) = send(
        &app,
        "POST",
        &format!("/api/approvals/{id}/approve"),
        "agent",
        "alice",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "self_approval");
    // A caller without the permission cannot either.
    let (status, refused) = send(
        &app,
        "POST",
        &format!("/api/approvals/{id}/approve"),
        "oncall",
        "alice",
        "",
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_required"))
    );

    let (status, listed) = send(&app, "GET", "/api/approvals", "bob", "alice", "").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["approvals"][0]["id"], id.as_str());
    assert_eq!(listed["approvals"][0]["state"], "pending");

    let (status, granted) = send(
        &app,
        "POST",
        &format!("/api/approvals/{id}/approve"),
        "bob",
        "alice",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["state"], "granted");
    // The statement verifies with the key the sidecar publishes.
    let (_, keys) = send(&app, "GET", "/api/approvals/key", "bob", "alice", "").await;
    let jwk = &keys["keys"][0];
    let verifier =
        ApprovalVerifier::new(jwk["x"].as_str().unwrap(), jwk["kid"].as_str().unwrap()).unwrap();
    let statement = verifier
        .verify(granted["statement"].as_str().unwrap())
        .unwrap();
    assert_eq!(statement.approvers, ["bob"]);
    assert_eq!(statement.requester.as_deref(), Some("agent"));

    // Another body, path or user is another call.
    for (user, path, body) in [
        (
            "alice",
            "/transfers",
            r#"{"amount": 10000, "to": "acct-1"}"#,
        ),
        ("alice", "/transfers/urgent", order),
        ("mallory", "/transfers", order),
    ] {
        let (status, other) = transfer(&app, user, path, body).await;
        assert_eq!(other["code"], "approval_required", "{user} {path}: {other}");
        assert_ne!(other["approvalId"], id.as_str());
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert!(calls.lock().unwrap().is_empty());

    // The approved call passes, with the credential; once.
    let (status, answer) = transfer(&app, "alice", "/transfers", order).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        *calls.lock().unwrap(),
        [("/v1/transfers".to_owned(), order.to_owned())]
    );
    let (status, again) = transfer(&app, "alice", "/transfers", order).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("approval_required"))
    );
    assert_ne!(again["approvalId"], id.as_str());
    assert_eq!(calls.lock().unwrap().len(), 1);

    // Break-glass: the permission, a justification, then the call passes, and it is told.
    let glass = again["approvalId"].as_str().unwrap();
    let path = format!("/api/approvals/{glass}/break-glass");
    let (status, refused) = send(
        &app,
        "POST",
        &path,
        "bob",
        "alice",
        r#"{"justification": "x"}"#,
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_required"))
    );
    let (status, refused) = send(&app, "POST", &path, "oncall", "alice", "{}").await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("justification_required"))
    );
    let (status, passed) = send(
        &app,
        "POST",
        &path,
        "oncall",
        "alice",
        r#"{"justification": "payroll is late"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{passed}");
    let told = events(&hooks, "break_glass", 1).await;
    assert!(
        told[0]["text"]
            .as_str()
            .unwrap()
            .contains("payroll is late"),
        "{}",
        told[0]
    );
    let (status, _) = transfer(&app, "alice", "/transfers", order).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_rule_that_demands_approval_needs_approvals_configured() {
    let text =
        approvals_config("http://127.0.0.1:9", "http://127.0.0.1:9").replace("[approvals]\n", "");
    let err = load_str(&text, Path::new("."), "test".into(), &env, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("rule `bank-transfers`: demands approval"),
        "{err}"
    );
}

const POLICIES: &str = r#"
@id("agents-search")
permit(principal in Workload::"spiffe://prod.example/agent", action == Action::"call-tool",
       resource == Tool::"search");

@id("resolve-openai")
permit(principal, action == Action::"resolve", resource == Credential::"cred-openai");

@id("no-mallory")
forbid(principal == User::"mallory", action, resource);
"#;

fn policies_config() -> String {
    format!(
        r#"
[stores.default]
type = "memory"
credentials = [{{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }}]
secrets = {{ openai-prod = {{ env = "BANK_KEY" }} }}

[[rules]]
id = "openai"
credentialRef = "openai-prod"
priority = 10
requireAuthorization = true

[policies]
files = ["agents.cedar"]
reload_interval_secs = 1
{CALLERS}
[[auth.api_keys]]
name = "agent-workload"
env = "WORKLOAD_KEY"
any_user = true
spiffe_id = "spiffe://prod.example/agent"
"#
    )
}

fn resolve_body(user: &str) -> String {
    json!({"userId": user, "resourceId": "r", "resourceKind": "shared", "provider": "openai",
           "model": "gpt-4o", "action": "read", "traceId": "t"})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_checks_and_resolutions_and_reload() {
    let dir = std::env::temp_dir().join(format!("agent-identity-policies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("agents.cedar"), POLICIES).unwrap();
    let loaded = load_str(&policies_config(), &dir, "test".into(), &env, None).unwrap();
    let bound = "127.0.0.1:3001".parse().unwrap();
    let state = loaded
        .into_state(Arc::new(Metrics::new()), bound)
        .await
        .unwrap();
    let files = state.policies.clone().unwrap();
    let watcher = tokio::spawn(files.watch());
    let app = app(state);

    // A check of its own: the workload's tool call, for the caller's proven workload.
    let search = r#"{"userId": "alice", "action": "call-tool", "resource": {"type": "tool", "id": "search"}, "context": {"risk": "low"}}"#;
    let (status, answer) = send(&app, "POST", "/api/authorize", "workload", "alice", search).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(answer["policies"], json!(["agents-search"]));
    // The same check by a caller that is not that workload: no policy permits it.
    let (_, answer) = send(&app, "POST", "/api/authorize", "bob", "alice", search).await;
    assert_eq!(
        (answer["allowed"].as_bool(), answer["reason"].as_str()),
        (Some(false), Some("no policy permits it"))
    );
    // Naming a workload the caller did not prove is refused.
    let claimed = r#"{"userId": "alice", "spiffeId": "spiffe://prod.example/agent", "action": "call-tool", "resource": {"type": "tool", "id": "search"}}"#;
    let (status, _) = send(&app, "POST", "/api/authorize", "bob", "alice", claimed).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = send(
        &app,
        "POST",
        "/api/authorize",
        "bob",
        "alice",
        r#"{"action": "call-tool"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Resolutions: permitted for alice, forbidden for mallory, naming the policy.
    let (status, granted) = send(
        &app,
        "POST",
        "/api/resolve",
        "bob",
        "alice",
        &resolve_body("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    let (status, denied) = send(
        &app,
        "POST",
        "/api/resolve",
        "bob",
        "alice",
        &resolve_body("mallory"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denied["code"], "not_permitted");
    assert_eq!(denied["policies"], json!(["no-mallory"]));

    // A broken edit leaves the policies in force; a good one takes over.
    std::fs::write(
        dir.join("agents.cedar"),
        "permit(principal, action, resource",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = send(
        &app,
        "POST",
        "/api/resolve",
        "bob",
        "alice",
        &resolve_body("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    std::fs::write(
        dir.join("agents.cedar"),
        r#"@id("no-alice") forbid(principal == User::"alice", action, resource);"#,
    )
    .unwrap();
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, denied) = send(
            &app,
            "POST",
            "/api/resolve",
            "bob",
            "alice",
            &resolve_body("alice"),
        )
        .await;
        if status == StatusCode::FORBIDDEN {
            assert_eq!(denied["policies"], json!(["no-alice"]), "{denied}");
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the edited policies were not loaded");
    watcher.abort();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_explanation_names_the_policies_that_decided() {
    use agent_identity::{ExplainedOutcome, RequestContext};
    let dir = std::env::temp_dir().join(format!("agent-identity-explained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("agents.cedar"), POLICIES).unwrap();
    let loaded = load_str(&policies_config(), &dir, "test".into(), &env, None).unwrap();
    let context = |user: &str| {
        RequestContext::from_json(&serde_json::from_str(&resolve_body(user)).unwrap()).unwrap()
    };
    let granted = loaded.router.explain(&context("alice")).await;
    let ExplainedOutcome::Granted { notes, .. } = &granted.outcome else {
        panic!("{granted:?}")
    };
    assert_eq!(notes, &["permitted by `resolve-openai`".to_owned()]);
    let denied = serde_json::to_value(loaded.router.explain(&context("mallory")).await).unwrap();
    assert_eq!(
        denied["outcome"]["reason"]["code"], "not_permitted",
        "{denied}"
    );
    assert_eq!(
        denied["outcome"]["reason"]["policies"],
        json!(["no-mallory"])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn policies_that_do_not_fit_the_schema_stop_the_configuration_naming_the_policy() {
    let dir = std::env::temp_dir().join(format!(
        "agent-identity-bad-policies-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("agents.cedar"),
        r#"@id("typo") permit(principal == Usr::"alice", action, resource);"#,
    )
    .unwrap();
    let err = load_str(&policies_config(), &dir, "test".into(), &env, None).unwrap_err();
    assert!(err.to_string().contains("policy `typo`"), "{err}");
    // A rule that needs a permit, and no policies.
    let without = policies_config().replace(
        "[policies]\nfiles = [\"agents.cedar\"]\nreload_interval_secs = 1\n",
        "",
    );
    let err = load_str(&without, &dir, "test".into(), &env, None).unwrap_err();
    assert!(err.to_string().contains("requireAuthorization"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_sharing_vault_use_one_approval_once() {
    use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let (upstream, calls) = recorder().await;
    let dir = std::env::temp_dir().join(format!("agent-identity-approvals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One signing key, shared by both: each checks the statements the other signs.
    std::fs::write(
        dir.join("approvals.pem"),
        identity_test_support::ed25519_key_pair(5).0,
    )
    .unwrap();
    let text = approvals_config(&upstream, "http://127.0.0.1:9")
        .replace("[notifications]", "[unused]")
        .replace(
            "[approvals]\n",
            &format!(
                "[approvals]\nvault = \"vault\"\nsigning_key_file = \"approvals.pem\"\n\n\
                 [stores.vault]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"kv\"\nprefix = \"agents\"\n\
                 [stores.vault.auth]\nmethod = \"token\"\ntoken_env = \"BAO_TOKEN\"\n\n",
                bao.address()
            ),
        );
    let text = text.split("[unused]").next().unwrap().to_owned() + CALLERS;
    let env = |name: &str| {
        (name == "BAO_TOKEN")
            .then(|| BAO_ROOT_TOKEN.to_owned())
            .or_else(|| env(name))
    };
    let sidecar = || async {
        let loaded = load_str(&text, &dir, "test".into(), &env, None).unwrap();
        app(loaded
            .into_state(Arc::new(Metrics::new()), "127.0.0.1:3001".parse().unwrap())
            .await
            .unwrap())
    };
    let (first, second) = (sidecar().await, sidecar().await);
    let order = r#"{"amount": 99}"#;

    // Held through one; the other holds the same approval, and an approver there grants it.
    let (_, held) = transfer(&first, "alice", "/transfers", order).await;
    let id = held["approvalId"].as_str().unwrap().to_owned();
    let (_, again) = transfer(&second, "alice", "/transfers", order).await;
    assert_eq!(again["approvalId"], id.as_str(), "{again}");
    let (status, granted) = send(
        &second,
        "POST",
        &format!("/api/approvals/{id}/approve"),
        "bob",
        "alice",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");

    // Both send the approved call at once: exactly one goes through.
    let (a, b) = tokio::join!(
        transfer(&first, "alice", "/transfers", order),
        transfer(&second, "alice", "/transfers", order)
    );
    let passed = [a.0, b.0]
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    assert_eq!(passed, 1, "{a:?} / {b:?}");
    assert_eq!(calls.lock().unwrap().len(), 1);
    let (_, shown) = send(
        &first,
        "GET",
        &format!("/api/approvals/{id}"),
        "bob",
        "alice",
        "",
    )
    .await;
    assert_eq!(shown["state"], "used", "{shown}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn check_warns_of_calls_nobody_can_approve() {
    use agent_identity_server::cli::check::{LintKind, lint};
    let lints_of = |demand: &str| {
        let text = approvals_config("http://127.0.0.1:9", "http://127.0.0.1:9")
            .replace("requireApproval = { breakGlass = true }", demand);
        lint(&load_str(&text, Path::new("."), "test".into(), &env, None).unwrap())
    };
    // Two approvals out of bob and carol; only bob holds `approve` (and the agent, not named).
    let lints = lints_of(r#"requireApproval = { approvers = ["bob", "carol"], required = 2 }"#);
    let found: Vec<_> = lints
        .iter()
        .filter(|l| l.kind == LintKind::NoApprover)
        .collect();
    assert_eq!(found.len(), 1, "{lints:?}");
    assert!(
        found[0].message.contains("only 1 caller(s)"),
        "{}",
        found[0]
    );
    // Any approver: agent and bob both hold `approve`.
    let lints = lints_of(r#"requireApproval = { required = 2 }"#);
    assert!(
        !lints.iter().any(|l| l.kind == LintKind::NoApprover),
        "{lints:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_call_refused_upstream_is_not_sent_again() {
    // An upstream that refuses every credential (401), and counts the calls.
    let calls = Arc::new(Mutex::new(0u32));
    let counted = calls.clone();
    let refusing = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            *counted.lock().unwrap() += 1;
            StatusCode::UNAUTHORIZED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, refusing).await.unwrap() });
    let (webhook, _) = recorder().await;
    let app = sidecar_of(&approvals_config(&upstream, &webhook), Path::new(".")).await;

    let (_, held) = transfer(&app, "alice", "/transfers", "{}").await;
    let id = held["approvalId"].as_str().unwrap().to_owned();
    send(
        &app,
        "POST",
        &format!("/api/approvals/{id}/approve"),
        "bob",
        "alice",
        "",
    )
    .await;
    let (status, _) = transfer(&app, "alice", "/transfers", "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Sent once; no new approval was asked for behind the agent's back.
    assert_eq!(*calls.lock().unwrap(), 1);
    let (_, listed) = send(&app, "GET", "/api/approvals", "bob", "alice", "").await;
    assert_eq!(listed["approvals"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn the_pages_ask_for_a_sign_in_and_refuse_what_they_did_not_start() {
    let text = approvals_config("http://127.0.0.1:9", "http://127.0.0.1:9")
        + "\n[web]\npublic_url = \"http://127.0.0.1:3001\"\nissuer = \"http://127.0.0.1:9\"\n\
           client_id = \"ui\"\napprovers = [\"bob\"]\nallow_http_loopback = true\n";
    let app = sidecar_of(&text, Path::new(".")).await;
    let get = |path: &str| {
        Request::get(path)
            .header("host", "127.0.0.1:3001")
            .body(Body::empty())
            .unwrap()
    };
    let home = app.clone().oneshot(get("/ui/")).await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    assert!(
        home.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let body = home.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Sign in"));

    let listed = app.clone().oneshot(get("/ui/approvals")).await.unwrap();
    assert_eq!(listed.status(), StatusCode::SEE_OTHER);
    assert_eq!(listed.headers()["location"], "/ui/signin");

    let callback = app
        .clone()
        .oneshot(get("/ui/callback?code=c&state=s"))
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::BAD_REQUEST);

    let post = Request::post("/ui/approvals/a1/approve")
        .header("host", "127.0.0.1:3001")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("csrf=x"))
        .unwrap();
    assert_eq!(
        app.clone().oneshot(post).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn where_budgets_are_counted_is_checked() {
    let base = r#"
[stores.default]
type = "memory"
credentials = [{ id = "cred-openai", kind = "fixed", name = "OpenAI", scope = "chat", status = "active", ref = "openai-prod" }]
secrets = { openai-prod = { env = "BANK_KEY" } }

[stores.bao]
type = "vault"
address = "http://127.0.0.1:9"
mount = "kv"

[stores.bao.auth]
method = "token"
token_env = "BANK_KEY"

[redis.shared]
url = "redis://127.0.0.1:9"

[[rules]]
id = "openai"
credentialRef = "openai-prod"
priority = 1
"#;
    let budget =
        "\n[[budgets]]\nid = \"per-user\"\nper = \"user\"\nrequests = 5\nwindow_secs = 60\n";
    let load = |head: &str, tail: &str| {
        let text = format!("{head}\n{base}{tail}");
        load_str(&text, Path::new("."), "test".into(), &env, None).map(|_| ())
    };
    // Nothing is contacted to load: a Vault store or a Redis server named is enough.
    load("budgets_vault = \"bao\"", budget).unwrap();
    load("budgets_redis = \"shared\"", budget).unwrap();
    for (head, tail, expected) in [
        (
            "budgets_vault = \"nowhere\"",
            budget,
            "budgets, field `budgets_vault`: names no store of type \"vault\": `nowhere`",
        ),
        (
            "budgets_vault = \"bao\"\nbudgets_redis = \"shared\"",
            budget,
            "budgets, field `budgets_redis`: names a second place for what `budgets_vault` keeps: keep one",
        ),
        (
            "budgets_vault = \"bao\"",
            "",
            "budgets_vault: is set and no [[budgets]] are configured",
        ),
        (
            "budgets_vault = \"bao\"\nbudgets_vault_prefix = \"a/../b\"",
            budget,
            "budgets, field `budgets_vault_prefix`",
        ),
    ] {
        let err = load(head, tail).unwrap_err().to_string();
        assert!(err.contains(expected), "{head}: {err}");
    }
}
