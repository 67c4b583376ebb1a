//! Starts the real servers agent-identity's tests run against, one per test process.
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

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
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

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/oidc-provider")
}

impl AuthorizationServer {
    /// Starts a server and waits until it has printed its issuer.
    pub async fn start() -> Self {
        let dir = fixture_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules: run `npm ci` there (scripts/test.sh does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
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

    /// How many token exchanges the token endpoint has handled.
    pub async fn exchanges(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/test/stats", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["exchanges"].as_u64().unwrap()
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
