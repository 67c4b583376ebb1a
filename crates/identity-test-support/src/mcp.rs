//! An OAuth-protected MCP server built with the official MCP Python SDK
//! (`fixtures/mcp/protected_mcp.py`), for the tests of MCP clients.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The protected MCP server, stopped when dropped: its tokens come from `issuer` and are
/// checked by introspection there; its one tool, `whoami`, answers the token's subject.
#[derive(Debug)]
pub struct ProtectedMcpServer {
    _child: Child,
    resource: String,
}

impl ProtectedMcpServer {
    /// Starts it on an ephemeral loopback port, trusting `issuer` (an
    /// [`AuthorizationServer`](crate::AuthorizationServer)'s), with the Python that
    /// `scripts/test.sh` prepares (`AGENT_IDENTITY_PYTHON`).
    pub async fn start(issuer: &str) -> Self {
        let python = std::env::var("AGENT_IDENTITY_PYTHON")
            .expect("AGENT_IDENTITY_PYTHON must name the Python that scripts/test.sh prepares");
        let port = super::free_port();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mcp/protected_mcp.py");
        let child = Command::new(python)
            .arg(script)
            .args([issuer, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the protected MCP server does not start");
        let metadata = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
        let http = crate::http_client();
        for _ in 0..200 {
            if http
                .get(&metadata)
                .send()
                .await
                .is_ok_and(|answer| answer.status().is_success())
            {
                return Self {
                    _child: child,
                    resource: format!("http://127.0.0.1:{port}/mcp"),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the protected MCP server did not start in 10 s");
    }

    /// Its URL, `http://127.0.0.1:<port>/mcp`: the protected resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Its origin, `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> &str {
        self.resource.trim_end_matches("/mcp")
    }
}
