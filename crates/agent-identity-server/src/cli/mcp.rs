//! `agent-identity mcp`: the identity tools over MCP on standard input and output.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use rmcp::ServiceExt;

use crate::app::mcp::IdentityTools;
use crate::app::metrics::Metrics;
use crate::config;

/// Serves the tools of the configuration at `path`, acting for `user`, until the client
/// closes the session. Exits 2 when the configuration or the user is not valid, 1 when the
/// session fails.
#[allow(clippy::print_stderr, reason = "standard output carries the protocol")]
pub async fn run(path: &Path, user: &str) -> ExitCode {
    if user.trim().is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        eprintln!("error: --user must be 1 to 256 characters, none of them control characters");
        return ExitCode::from(2);
    }
    let loaded = match config::load_file(path, None) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: the configuration is not valid:");
            for error in &err.errors {
                eprintln!("  - {error}");
            }
            return ExitCode::from(2);
        }
    };
    // No listener: the address only names the server in what it reports.
    let bound = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let state = match loaded.into_state(Arc::new(Metrics::new()), bound).await {
        Ok(state) => Arc::new(state),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let tools = IdentityTools::new(state, Some(user.to_owned()));
    let session = match tools.serve(rmcp::transport::stdio()).await {
        Ok(session) => session,
        Err(err) => {
            eprintln!("error: the MCP session did not start: {err}");
            return ExitCode::FAILURE;
        }
    };
    match session.waiting().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: the MCP session failed: {err}");
            ExitCode::FAILURE
        }
    }
}
