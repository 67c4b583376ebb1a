//! Three sidecar processes on loopback sharing one Redis and one OpenBao, against one
//! authorization server (oidc-provider, which rotates refresh tokens and revokes a grant whose
//! old refresh token is spent again): what replicas behind a load balancer must do once, they
//! do once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use identity_test_support::{AuthorizationServer, BAO_ROOT_TOKEN, OpenBao, RedisServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;
use support::Sidecar;

const CONNECTIONS_KEY: [u8; 32] = [23; 32];

fn key_of(name: &str) -> String {
    format!("the-api-key-of-{name}-0123456789")
}

/// What the three replicas share, and the replicas.
struct Cluster {
    server: AuthorizationServer,
    redis: RedisServer,
    _bao: OpenBao,
    replicas: Vec<Sidecar>,
    bases: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Budgets counted in Redis.
const BUDGETS_IN_REDIS: &str = r#"budgets_redis = "shared""#;

/// One replica's configuration: everything shared lives in Redis or OpenBao; `budgets` says
/// where budgets are counted.
fn config(
    port: u16,
    issuer: &str,
    (redis, bao): (&str, &str),
    refresh_window_secs: u64,
    budgets: &str,
) -> String {
    format!(
        r#"
{budgets}

[server]
listen = "127.0.0.1:{port}"

[redis.shared]
url = "{redis}"

[stores.bao]
type = "vault"
address = "{bao}"
mount = "kv"

[stores.bao.auth]
method = "token"
token_env = "BAO_TOKEN"

[stores.users]
type = "oauth"
public_url = "http://127.0.0.1:{port}"
allow_http_loopback = true
connections_redis = "shared"
connections_key_env = "CONNECTIONS_KEY"
refresh_window_secs = {refresh_window_secs}

[stores.users.providers.idp]
preset = "dcr"
ref = "user-idp"
issuer = "{issuer}"
scopes = ["openid", "offline_access"]
prompt = "consent"

[stores.mcp]
type = "dcr"
allow_http_loopback = true
clients_redis = "shared"
clients_key_env = "CONNECTIONS_KEY"

[[stores.mcp.slots]]
ref = "crm-service"
issuer = "{issuer}"
scopes = ["crm:read"]
client_name = "sidecar-agent"

[stores.default]
type = "memory"
credentials = [{{ id = "cred-bank", kind = "fixed", name = "Bank", scope = "transfers", status = "active", ref = "bank-prod" }}]
secrets = {{ bank-prod = {{ env = "BANK_KEY" }} }}

[[rules]]
id = "idp"
credentialRef = "user-idp"
credentialKind = "user-delegated"
store = "users"
matchProvider = "idp"
priority = 1

[[rules]]
id = "crm"
credentialRef = "crm-service"
credentialKind = "fixed"
store = "mcp"
matchProvider = "crm"
priority = 2

[[rules]]
id = "bank"
credentialRef = "bank-prod"
matchProvider = "bank"
priority = 3
requireApproval = {{ approvers = ["bob"] }}

[[rules]]
id = "metered"
credentialRef = "bank-prod"
matchProvider = "metered"
priority = 4

[[budgets]]
id = "per-user"
per = "user"
requests = 50
window_secs = 3600
rules = ["metered"]

[approvals]
vault = "bao"
signing_key_file = "approvals.pem"

[revocations]
redis = "shared"
refresh_ms = 100
max_staleness_ms = 2000

[auth]
mode = "api-key"

[[auth.api_keys]]
name = "agent"
env = "AGENT_KEY"
any_user = true

[[auth.api_keys]]
name = "bob"
env = "BOB_KEY"
any_user = true
permissions = ["approve"]

[[auth.api_keys]]
name = "security"
env = "SECURITY_KEY"
any_user = true
permissions = ["revoke"]
"#
    )
}

impl Cluster {
    /// Starts the shared servers and three replicas; tokens live `token_ttl` seconds and are
    /// refreshed within `refresh_window_secs` of their expiry.
    async fn start(name: &str, token_ttl: u64, refresh_window_secs: u64) -> Self {
        Self::start_counting(name, token_ttl, refresh_window_secs, BUDGETS_IN_REDIS).await
    }

    /// [`Cluster::start`], with budgets counted where the `budgets` line says.
    async fn start_counting(
        name: &str,
        token_ttl: u64,
        refresh_window_secs: u64,
        budgets: &str,
    ) -> Self {
        let server = AuthorizationServer::start_with_env(&[(
            "FIXTURE_ACCESS_TOKEN_TTL",
            &token_ttl.to_string(),
        )])
        .await;
        let redis = RedisServer::start().await;
        let bao = OpenBao::start().await;
        bao.enable_kv2("kv").await;
        let dir = std::env::temp_dir().join(format!(
            "agent-identity-replicas-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("approvals.pem"),
            identity_test_support::ed25519_key_pair(7).0,
        )
        .unwrap();
        let connections_key = base64::engine::general_purpose::STANDARD.encode(CONNECTIONS_KEY);
        let (agent, bob, security) = (key_of("agent"), key_of("bob"), key_of("security"));
        let env = [
            ("CONNECTIONS_KEY", connections_key.as_str()),
            ("BAO_TOKEN", BAO_ROOT_TOKEN),
            ("BANK_KEY", "bank-secret-0123"),
            ("AGENT_KEY", agent.as_str()),
            ("BOB_KEY", bob.as_str()),
            ("SECURITY_KEY", security.as_str()),
        ];
        let mut replicas = Vec::new();
        let mut bases = Vec::new();
        for index in 0..3 {
            let port = identity_test_support::free_port();
            let path = dir.join(format!("replica-{index}.toml"));
            std::fs::write(
                &path,
                config(
                    port,
                    server.issuer(),
                    (&redis.url(), &bao.address()),
                    refresh_window_secs,
                    budgets,
                ),
            )
            .unwrap();
            replicas
                .push(Sidecar::start(&["serve", "--config", path.to_str().unwrap()], &env).await);
            bases.push(format!("http://127.0.0.1:{port}"));
        }
        Self {
            server,
            redis,
            _bao: bao,
            replicas,
            bases,
            dir,
        }
    }

    /// `POST /api/resolve` at replica `index` for `user` and `provider`, as the agent.
    async fn resolve(&self, index: usize, user: &str, provider: &str) -> (StatusCode, Value) {
        resolve_at(&self.bases[index], user, provider).await
    }

    /// Alice connects her `idp` account through replica 0, as a browser does.
    async fn connect_alice(&self) {
        let base = &self.bases[0];
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let link: Value = client()
            .post(format!("{base}/oauth/idp/link"))
            .header("x-api-key", key_of("agent"))
            .json(&json!({"userId": "alice", "loginHint": "alice"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let link = link["connectUrl"]
            .as_str()
            .expect("a connect link")
            .to_owned();
        let ticket = reqwest::Url::parse(&link)
            .unwrap()
            .query_pairs()
            .find(|(name, _)| name == "ticket")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(
            browser.get(&link).send().await.unwrap().status(),
            StatusCode::OK
        );
        let confirmed = browser
            .post(format!("{base}/oauth/idp/connect"))
            .header("origin", base)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("ticket={ticket}"))
            .send()
            .await
            .unwrap();
        assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
        let authorize = confirmed.headers()["location"].to_str().unwrap().to_owned();
        let callback = self
            .server
            .follow_authorization(&authorize, &format!("{base}/oauth/idp/callback"))
            .await;
        let done = browser.get(&callback).send().await.unwrap();
        assert!(
            done.status().is_success() || done.status().is_redirection(),
            "{}",
            done.status()
        );
        let (status, body) = self.resolve(1, "alice", "idp").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// One client for every call: building one loads the system's roots, and a hundred built at
/// once would hold the test's runtime long enough for the sidecars to drop the connections
/// whose headers are late.
fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(identity_test_support::http_client)
}

async fn resolve_at(base: &str, user: &str, provider: &str) -> (StatusCode, Value) {
    let body = json!({"userId": user, "resourceId": "repo", "resourceKind": "personal",
        "provider": provider, "model": "m", "action": "read", "traceId": "t"});
    post_as(base, "/api/resolve", "agent", &body).await
}

/// `POST path` at `base` with `body`, as the API key of `caller`: the status and JSON answer.
async fn post_as(base: &str, path: &str, caller: &str, body: &Value) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{base}{path}"))
        .header("x-api-key", key_of(caller))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_resolutions_of_an_expiring_connection_refresh_it_once() {
    // Tokens live 120 s and are refreshed in their last 115: five seconds after connecting, the
    // connection is due, and the refreshed one is not for five more.
    let cluster = Cluster::start("refresh", 120, 115).await;
    cluster.connect_alice().await;
    assert_eq!(cluster.server.refreshes().await, (0, 0));
    tokio::time::sleep(Duration::from_millis(5500)).await;

    let calls = (0..300).map(|n| cluster.resolve(n % 3, "alice", "idp"));
    let answers = futures::future::join_all(calls).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    // One refresh at the server, none refused (a rotated refresh token spent twice would be).
    assert_eq!(cluster.server.refreshes().await, (1, 0));
    // One registration for the three replicas' client of `idp`.
    assert_eq!(cluster.server.registrations().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_first_uses_of_a_dcr_slot_register_one_client() {
    let cluster = Cluster::start("dcr", 600, 60).await;
    let calls = (0..100).map(|n| cluster.resolve(n % 3, "alice", "crm"));
    let answers = futures::future::join_all(calls).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["credentialId"], "dcr:crm-service", "{body}");
    }
    assert_eq!(cluster.server.registrations().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_fifty_grants_fifty_across_the_three() {
    let cluster = Cluster::start("budget", 600, 60).await;
    grants_fifty_of_a_hundred_and_fifty(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_counted_in_vault_grants_fifty_across_the_three() {
    let cluster =
        Cluster::start_counting("budget-vault", 600, 60, r#"budgets_vault = "bao""#).await;
    grants_fifty_of_a_hundred_and_fifty(&cluster).await;
}

/// 150 resolutions of one user's metered rule spread over the replicas, 30 in flight at a time:
/// 50 granted, the rest refused for the budget. (All 150 at once, the check-and-set counts of
/// Vault retry long enough on two cores shared with other tests to pass the 10 s deadline.)
async fn grants_fifty_of_a_hundred_and_fifty(cluster: &Cluster) {
    use futures::StreamExt;
    let calls = (0..150).map(|n| cluster.resolve(n % 3, "alice", "metered"));
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(calls)
        .buffer_unordered(30)
        .collect()
        .await;

    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(body["code"], "budget_exhausted", "{status}: {body}");
    }
    let granted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(granted, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_given_at_one_replica_is_honoured_once_at_another() {
    let cluster = Cluster::start("approval", 600, 60).await;
    let (status, held) = cluster.resolve(0, "alice", "bank").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{held}");
    assert_eq!(held["code"], "approval_required", "{held}");
    let id = held["approvalId"].as_str().unwrap().to_owned();

    let approved = client()
        .post(format!("{}/api/approvals/{id}/approve", cluster.bases[1]))
        .header("x-api-key", key_of("bob"))
        .header("x-agent-identity-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(
        approved.status(),
        StatusCode::OK,
        "{}",
        approved.text().await.unwrap()
    );

    let (status, body) = cluster.resolve(2, "alice", "bank").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["credentialId"], "cred-bank");
    // Used once: the same call at any replica is held again, for a new approval.
    let (status, again) = cluster.resolve(0, "alice", "bank").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{again}");
    assert_ne!(again["approvalId"], id.as_str(), "{again}");
}

/// `POST /api/revocations` at replica `index`, as the security team.
async fn revoke_at(cluster: &Cluster, index: usize, body: Value) -> (StatusCode, Value) {
    post_as(&cluster.bases[index], "/api/revocations", "security", &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_revokes_no_replica_serves_when_it_answers() {
    let cluster = Cluster::start("revoke", 3600, 60).await;
    cluster.connect_alice().await;
    for index in 0..3 {
        assert_eq!(
            cluster.resolve(index, "alice", "metered").await.0,
            StatusCode::OK
        );
        assert_eq!(
            cluster.resolve(index, "alice", "idp").await.0,
            StatusCode::OK
        );
    }
    // The agent may not revoke.
    let body = json!({"credentialId": "cred-bank"});
    let (status, _) = post_as(&cluster.bases[0], "/api/revocations", "agent", &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A credential, revoked at replica 0: when the answer comes, none of the three serves it.
    let (status, record) = revoke_at(
        &cluster,
        0,
        json!({"credentialId": "cred-bank", "reason": "leaked in a log"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["by"], "security");
    for index in [1, 2, 0] {
        let (status, body) = cluster.resolve(index, "alice", "metered").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "credential_not_active", "{body}");
    }

    // Alice's connection, revoked at replica 2: revoked at the provider (RFC 7009), forgotten,
    // and refused at every replica.
    let (status, record) =
        revoke_at(&cluster, 2, json!({"userId": "alice", "provider": "idp"})).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["revokedAtProvider"], true, "{record}");
    assert!(record["secretSha256"].is_string(), "{record}");
    for index in [0, 1, 2] {
        let (status, body) = cluster.resolve(index, "alice", "idp").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "consent_required", "{body}");
    }
    // The list, as replica 1 sees it, holds both, and no secret.
    let listed: Value = client()
        .get(format!("{}/api/revocations", cluster.bases[1]))
        .header("x-api-key", key_of("security"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["revocations"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    let (status, body) = revoke_at(&cluster, 1, json!({"userId": "alice"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_leaves_the_others_serving_and_nothing_lost() {
    let mut cluster = Cluster::start("kill", 600, 60).await;
    cluster.connect_alice().await;
    let (status, body) = cluster.resolve(0, "alice", "crm").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let registered = cluster.server.registrations().await;
    assert_eq!(registered, 2, "the idp client and the crm client");

    // Load on every replica; replica 2 is killed a moment in.
    let bases = cluster.bases.clone();
    let load = |index: usize| {
        let base = bases[index].clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in 0..60 {
                let provider = if n % 2 == 0 { "idp" } else { "crm" };
                let body = json!({"userId": "alice", "resourceId": "repo", "resourceKind": "personal",
                    "provider": provider, "model": "m", "action": "read", "traceId": "t"});
                let answer = client()
                    .post(format!("{base}/api/resolve"))
                    .header("x-api-key", key_of("agent"))
                    .json(&body)
                    .send()
                    .await
                    .map(|response| response.status());
                answers.push(answer);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            answers
        })
    };
    let loads: Vec<_> = (0..3).map(load).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = cluster.replicas[2].child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &killed])
            .status()
            .unwrap()
            .success()
    );
    let mut results = Vec::new();
    for load in loads {
        results.push(load.await.unwrap());
    }
    // The survivors served every request.
    for answers in &results[..2] {
        for answer in answers {
            assert_eq!(answer.as_ref().ok(), Some(&StatusCode::OK), "{answer:?}");
        }
    }
    // The killed one stopped answering.
    assert!(results[2].iter().any(Result::is_err));

    // No lease outlives its time to live: each has one, within the registry's and the
    // refresh's thirty seconds.
    let keys = cluster.redis.command(&["KEYS", "*:l:*"]).await.unwrap();
    for key in keys.lines().filter(|line| line.contains(":l:")) {
        let ttl = cluster.redis.command(&["PTTL", key]).await.unwrap();
        let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
        assert!((1..=30_000).contains(&ttl), "{key}: {ttl}");
    }
    // Nothing lost: the connection and the clients are there for the survivors, and nothing
    // was registered again.
    for index in 0..2 {
        for provider in ["idp", "crm"] {
            let (status, body) = cluster.resolve(index, "alice", provider).await;
            assert_eq!(status, StatusCode::OK, "{provider} at {index}: {body}");
        }
    }
    assert_eq!(cluster.server.registrations().await, registered);
    let _ = cluster.replicas.pop();
}

#[test]
fn the_deployment_guides_configuration_is_valid() {
    // docs/deploy.md's ConfigMap, loaded as the sidecar would (nothing is contacted to load).
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy.md"),
    )
    .unwrap();
    let block = guide
        .split("agent-identity.toml: |\n")
        .nth(1)
        .unwrap()
        .split("\n---")
        .next()
        .unwrap();
    let config: String = block
        .lines()
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = std::env::temp_dir().join(format!("agent-identity-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("approvals.pem");
    std::fs::write(&pem, identity_test_support::ed25519_key_pair(3).0).unwrap();
    let config = config
        .replace(
            "/etc/agent-identity/tls/redis-ca.pem",
            identity_test_support::tls_fixture("ca.pem")
                .to_str()
                .unwrap(),
        )
        .replace(
            "/etc/agent-identity/keys/approvals.pem",
            pem.to_str().unwrap(),
        );
    let key = base64::engine::general_purpose::STANDARD.encode(CONNECTIONS_KEY);
    let env = |name: &str| match name {
        "REDIS_PASSWORD" | "GITHUB_CLIENT_SECRET" => Some("from-the-secret".to_owned()),
        "CONNECTIONS_KEY" => Some(key.clone()),
        _ => None,
    };
    let loaded =
        agent_identity_server::config::load_str(&config, &dir, "deploy.md".into(), &env, None);
    std::fs::remove_dir_all(&dir).unwrap();
    let loaded = loaded.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(loaded.router.rule_count(), 2);
    assert!(loaded.approvals.is_some());
}
