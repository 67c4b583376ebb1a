//! Starts the real servers agent-identity's tests run against, one per test process.
//!
//! [`OpenBao`] is the OpenBao server (Vault's API) in dev mode, from the `bao` binary that
//! `scripts/test.sh` installs (its path in `AGENT_IDENTITY_BAO`, else `bao` on the `PATH`).
//! [`Moto`] is moto's server (AWS APIs, Secrets Manager among them), from `AGENT_IDENTITY_MOTO`,
//! else `moto_server` on the `PATH`. [`RedisServer`] is Redis, from `AGENT_IDENTITY_REDIS`, else
//! `redis-server` on the `PATH`.
//!
//! [`AuthorizationServer`] is oidc-provider (OpenID certified) with the project's own RFC 8693
//! token exchange grant, from `fixtures/oidc-provider` (its packages are installed by
//! `scripts/test.sh` with `npm ci`). It binds 127.0.0.1 on an ephemeral port and is stopped when
//! dropped.
//!
//! ```no_run
//! # async fn example() {
//! let server = identity_test_support::AuthorizationServer::start().await;
//! let token = server.subject_token("alice", "crm:read").await;
//! # }
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure is a failed test"
)]

mod browser;
mod keys;
mod mcp;
mod postgres;
mod redis;

pub use browser::browse;
pub use keys::{CLIENT_KEY_ID, JWT_CLIENT_ID, ed25519_key_pair, openssl_key};
pub use mcp::ProtectedMcpServer;
pub use postgres::{POSTGRES_ADMIN, POSTGRES_ADMIN_PASSWORD, PostgresServer};
pub use redis::RedisServer;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The confidential client that exchanges tokens with `client_secret_basic`.
pub const CLIENT_ID: &str = "agent-identity";
/// Its secret.
pub const CLIENT_SECRET: &str = "agent-identity-secret";
/// The confidential client that exchanges tokens with `client_secret_post`.
pub const POST_CLIENT_ID: &str = "agent-identity-post";
/// Its secret.
pub const POST_CLIENT_SECRET: &str = "agent-identity-post-secret";
/// Targets the server knows (audience or resource), with the scopes they accept.
pub const CRM: &str = "https://crm.example.com";
/// The CRM's API as an RFC 8707 resource.
pub const CRM_API: &str = "https://crm.example.com/api";
/// A second target, accepting `erp:read`.
pub const ERP: &str = "https://erp.example.com";

/// A running oidc-provider; see the [crate documentation](crate).
#[derive(Debug)]
pub struct AuthorizationServer {
    child: Child,
    issuer: String,
    http: reqwest::Client,
}

/// A reqwest client for tests, with the ring TLS provider installed once per process.
pub fn http_client() -> reqwest::Client {
    // Fails only when a provider is installed already, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Everything a `tracing` subscriber writes, kept for a test to search (for a planted secret).
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::fmt::Debug for CapturedLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedLogs").finish_non_exhaustive()
    }
}

impl CapturedLogs {
    /// A subscriber that writes every event and span of every target, down to `TRACE`, here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish()
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A valid request context: user `alice` reads shared resource `docs` with OpenAI's `gpt-4o`.
pub fn request_context() -> identity_core::RequestContext {
    identity_core::RequestContext::builder()
        .user_id("alice")
        .resource_id("docs")
        .resource_kind(identity_core::ResourceKind::Shared)
        .provider("openai")
        .model("gpt-4o")
        .action("read")
        .trace_id("t1")
        .build()
        .unwrap()
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/oidc-provider")
}

impl AuthorizationServer {
    /// Starts a server and waits until it has printed its issuer.
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// Starts a server that also knows client [`JWT_CLIENT_ID`] by the public key `jwk` (it
    /// authenticates with `private_key_jwt`; see [`ed25519_key_pair`]).
    pub async fn start_with_client_key(jwk: &str) -> Self {
        Self::start_with_env(&[("FIXTURE_CLIENT_JWK", jwk)]).await
    }

    /// Starts a server with extra environment variables (`FIXTURE_INITIAL_ACCESS_TOKEN` makes
    /// registration demand that initial access token).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = fixture_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules: run `npm ci` there (scripts/test.sh does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts (Node.js 20 or later is needed)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the authorization server printed its issuer within 30 s")
            .unwrap()
            .expect("the authorization server exited before printing its issuer");
        let issuer = serde_json::from_str::<Value>(&line).unwrap()["issuer"]
            .as_str()
            .unwrap()
            .to_owned();
        // Keep reading: a server whose stdout is closed dies of EPIPE at its next log line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            issuer,
            http: http_client(),
        }
    }

    /// The issuer, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// An access token of user `sub` with `scope`, as a login would give the web application.
    pub async fn subject_token(&self, sub: &str, scope: &str) -> String {
        self.mint(&[("sub", sub), ("scope", scope)]).await
    }

    /// A JWT access token of user `sub` with `scope` for resource server `audience`, signed with
    /// the server's keys (published at `{issuer}/jwks`): what a caller presents to a resource
    /// server such as the sidecar.
    pub async fn jwt_access_token(&self, sub: &str, scope: &str, audience: &str) -> String {
        self.mint(&[("sub", sub), ("scope", scope), ("audience", audience)])
            .await
    }

    async fn mint(&self, form: &[(&str, &str)]) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/test/subject-token", self.issuer))
            .form(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// Follows an authorize URL as a browser would, with a cookie jar, through the server's
    /// headless login (the `login_hint` user) and consent, until it redirects to
    /// `redirect_uri`; that callback URL.
    pub async fn follow_authorization(&self, authorize: &str, redirect_uri: &str) -> String {
        let mut cookies: Vec<(String, String)> = Vec::new();
        let mut next = authorize.to_owned();
        for _ in 0..20 {
            let cookie = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let response = self
                .http
                .get(&next)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            for value in response.headers().get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                if let Some((name, value)) = pair.split_once('=') {
                    cookies.retain(|(k, _)| k != name);
                    cookies.push((name.to_owned(), value.to_owned()));
                }
            }
            let location = response
                .headers()
                .get("location")
                .unwrap_or_else(|| {
                    panic!("{next} answered {} without a redirect", response.status())
                })
                .to_str()
                .unwrap()
                .to_owned();
            let absolute = reqwest::Url::parse(&next)
                .unwrap()
                .join(&location)
                .unwrap()
                .to_string();
            if absolute.starts_with(redirect_uri) {
                return absolute;
            }
            next = absolute;
        }
        panic!("the authorization did not come back to {redirect_uri} within 20 redirects");
    }

    /// How many token exchanges the token endpoint has handled.
    pub async fn exchanges(&self) -> u64 {
        self.stat("exchanges").await
    }

    /// How many clients the server registered (RFC 7591).
    pub async fn registrations(&self) -> u64 {
        self.stat("registrations").await
    }

    /// How many refresh grants the server served, and how many it refused.
    pub async fn refreshes(&self) -> (u64, u64) {
        (
            self.stat("refreshes").await,
            self.stat("refreshesRefused").await,
        )
    }

    async fn stat(&self, name: &str) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/test/stats", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats[name].as_u64().unwrap()
    }

    /// What the server says of `token` (RFC 7662), asked by the exchanging client.
    pub async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Revokes `token` (RFC 7009), as the web application would at logout.
    pub async fn revoke(&self, token: &str) {
        let status = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth("web-app", Some("web-app-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "revocation answered {status}");
    }
}

impl Drop for AuthorizationServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// An OpenBao dev server on 127.0.0.1 and a port of its own, with a known root token. Dev mode
/// keeps everything in memory: a restart starts empty (mounts included).
#[derive(Debug)]
pub struct OpenBao {
    child: Option<Child>,
    port: u16,
    http: reqwest::Client,
    /// The port of a second listener that requires a client certificate, if there is one.
    mutual_tls_port: Option<u16>,
}

/// The project's test TLS material (`fixtures/tls`): a CA, a server certificate for 127.0.0.1
/// and a client certificate it signed.
pub fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tls")
        .join(name)
}

/// The root token of every [`OpenBao`] server.
pub const BAO_ROOT_TOKEN: &str = "root-token-for-tests";

fn bao_binary() -> PathBuf {
    std::env::var_os("AGENT_IDENTITY_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bao"))
}

/// Spawns `command` (stopped when its `Child` is dropped) and waits until `ready` answers a GET
/// with a success, for at most 20 s.
async fn spawn_until_ready(command: &mut Command, ready: &str, what: &str) -> Child {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "{what} ({}) does not start ({err}): run scripts/test.sh, which installs it",
                command.as_std().get_program().to_string_lossy()
            )
        });
    let http = http_client();
    for _ in 0..400 {
        if http
            .get(ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not answer {ready} within 20 s");
}

/// A listener on 127.0.0.1 that accepts connections, counts them and never answers: proof that
/// a call made no request, or a server that hangs. Its address (`http://…`) and the count.
pub async fn silent_listener() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    silent_listener_on("127.0.0.1").await
}

/// [`silent_listener`] on another loopback address: `127.0.0.2` stands for a host inside the
/// network, which the outbound policy must never reach.
pub async fn silent_listener_on(
    ip: &str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (address, connections)
}

/// A loopback port free now: for a server whose address must be known before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OpenBao {
    /// Starts a server and waits until it answers its health check.
    pub async fn start() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            http: http_client(),
            mutual_tls_port: None,
        };
        server.spawn().await;
        server
    }

    /// Starts a server that also listens with mutual TLS ([`OpenBao::mutual_tls_address`]):
    /// the fixture's server certificate, and a client certificate signed by the fixture's CA
    /// required. [`OpenBao::address`] stays plain HTTP, for set-up.
    pub async fn start_mutual_tls() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            http: http_client(),
            mutual_tls_port: Some(free_port()),
        };
        server.spawn().await;
        server
    }

    /// `https://127.0.0.1:PORT` of the mutual-TLS listener.
    pub fn mutual_tls_address(&self) -> String {
        format!("https://127.0.0.1:{}", self.mutual_tls_port.unwrap())
    }

    async fn spawn(&mut self) {
        let binary = bao_binary();
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{}", self.port),
            format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
            "-dev-no-store-token".to_owned(),
        ];
        if let Some(port) = self.mutual_tls_port {
            let listener = format!(
                "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = {:?}\n  \
                 tls_key_file = {:?}\n  tls_client_ca_file = {:?}\n  \
                 tls_require_and_verify_client_cert = true\n}}\n",
                tls_fixture("server.pem"),
                tls_fixture("server-key.pem"),
                tls_fixture("ca.pem"),
            );
            let path = std::env::temp_dir().join(format!(
                "agent-identity-bao-mtls-{}-{port}.hcl",
                std::process::id()
            ));
            std::fs::write(&path, listener).unwrap();
            args.push(format!("-config={}", path.display()));
        }
        let ready = format!("{}/v1/sys/health", self.address());
        self.child =
            Some(spawn_until_ready(Command::new(&binary).args(&args), &ready, "OpenBao").await);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the port stays this server's for [`OpenBao::restart`]).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts the server again on the same port, empty, with the same root token.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Calls the API as root; the answer's status and JSON body (`null` when empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_in(None, method, path, body).await
    }

    /// [`OpenBao::api`] in `namespace` (sent as `X-Vault-Namespace`).
    pub async fn api_in(
        &self,
        namespace: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.address()))
            .header("X-Vault-Token", BAO_ROOT_TOKEN);
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    /// Calls the API as root and fails the test unless the answer is a success.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.ok_in(None, method, path, body).await
    }

    /// [`OpenBao::ok`] in `namespace`.
    pub async fn ok_in(
        &self,
        namespace: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.api_in(namespace, method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// Creates the namespace `name` (OpenBao has namespaces, as Vault Enterprise does).
    pub async fn create_namespace(&self, name: &str) {
        self.ok("POST", &format!("sys/namespaces/{name}"), None)
            .await;
    }

    /// Mounts a fresh KV v2 engine at `mount` and waits until it serves requests.
    pub async fn enable_kv2(&self, mount: &str) {
        self.enable_kv2_in(None, mount).await;
    }

    /// [`OpenBao::enable_kv2`] in `namespace`.
    pub async fn enable_kv2_in(&self, namespace: Option<&str>, mount: &str) {
        self.ok_in(
            namespace,
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
        // A new KV v2 mount answers errors for a moment while it sets itself up.
        for _ in 0..100 {
            let (status, _) = self
                .api_in(namespace, "GET", &format!("{mount}/config"), None)
                .await;
            if status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the KV v2 mount {mount} did not become ready");
    }

    /// Writes the ACL policy `name`.
    pub async fn write_policy(&self, name: &str, hcl: &str) {
        self.ok(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await;
    }

    /// A token with `policies`, `ttl` (e.g. `"30s"`, empty for the default) and renewable.
    pub async fn create_token(&self, policies: &[&str], ttl: &str) -> String {
        let mut body = json!({ "policies": policies, "renewable": true });
        if !ttl.is_empty() {
            body["ttl"] = json!(ttl);
        }
        let answer = self.ok("POST", "auth/token/create", Some(body)).await;
        answer["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// Revokes `token`.
    pub async fn revoke_token(&self, token: &str) {
        self.ok("POST", "auth/token/revoke", Some(json!({ "token": token })))
            .await;
    }

    /// Enables AppRole at `approle` (once) and creates role `role` with `policies` and the token
    /// TTLs given (e.g. `"3s"`, `"6s"`); its role id and a fresh secret id.
    pub async fn approle(
        &self,
        role: &str,
        policies: &[&str],
        token_ttl: &str,
        token_max_ttl: &str,
    ) -> (String, String) {
        let (status, mounts) = self.api("GET", "sys/auth", None).await;
        assert_eq!(status, 200);
        if mounts["approle/"].is_null() {
            self.ok("POST", "sys/auth/approle", Some(json!({"type": "approle"})))
                .await;
        }
        self.ok(
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(json!({
                "token_policies": policies,
                "token_ttl": token_ttl,
                "token_max_ttl": token_max_ttl,
            })),
        )
        .await;
        let role_id = self
            .ok("GET", &format!("auth/approle/role/{role}/role-id"), None)
            .await["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret_id = self
            .ok("POST", &format!("auth/approle/role/{role}/secret-id"), None)
            .await["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (role_id, secret_id)
    }

    /// Revokes every token issued by logins at auth mount `mount` (what an operator does after
    /// a leak).
    pub async fn revoke_login_tokens(&self, mount: &str) {
        self.ok(
            "PUT",
            &format!("sys/leases/revoke-prefix/auth/{mount}/login"),
            None,
        )
        .await;
    }
}

/// A moto server (AWS APIs) on 127.0.0.1 and a port of its own; stopped when dropped. State is
/// in memory: a restart starts empty.
#[derive(Debug)]
pub struct Moto {
    child: Option<Child>,
    port: u16,
    http: reqwest::Client,
    free_actions: Option<u32>,
}

/// The region every test uses against [`Moto`].
pub const MOTO_REGION: &str = "us-east-1";
/// The access key id moto accepts (any is accepted; tests use this one).
pub const MOTO_ACCESS_KEY_ID: &str = "testing";
/// Its secret access key.
pub const MOTO_SECRET_ACCESS_KEY: &str = "testing";

impl Moto {
    /// Starts a server and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a server that enforces IAM (signatures and policies) after its first
    /// `free_actions` requests, which set the users and policies up without credentials.
    pub async fn start_enforcing_iam(free_actions: u32) -> Self {
        Self::start_with(Some(free_actions)).await
    }

    async fn start_with(free_actions: Option<u32>) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            http: http_client(),
            free_actions,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let binary = std::env::var_os("AGENT_IDENTITY_MOTO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("moto_server"));
        let mut command = Command::new(&binary);
        if let Some(free) = self.free_actions {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string());
        }
        command.args(["-H", "127.0.0.1", "-p", &self.port.to_string()]);
        let ready = format!("{}/moto-api/", self.endpoint());
        self.child = Some(spawn_until_ready(&mut command, &ready, "moto").await);
    }

    /// `http://127.0.0.1:PORT`, the endpoint override for the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Calls an AWS query API (IAM) without credentials, as the free actions of
    /// [`Moto::start_enforcing_iam`] allow; the answer's XML.
    pub async fn unsigned_query(&self, service: &str, params: &[(&str, &str)]) -> String {
        let response = self
            .http
            .post(self.endpoint())
            .header("authorization", unsigned_authorization(service))
            .form(params)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{params:?}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// Calls an AWS JSON API (`target` such as `secretsmanager.CreateSecret`) without
    /// credentials; the answer's JSON.
    pub async fn unsigned_json(&self, service: &str, target: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.endpoint())
            .header("authorization", unsigned_authorization(service))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{target}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// Stops the server.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts the server again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }
}

/// An `Authorization` header that names `service` (moto routes on it) and signs nothing.
fn unsigned_authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={MOTO_ACCESS_KEY_ID}/20260101/{MOTO_REGION}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}
