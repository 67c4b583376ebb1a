//! An agent calling an OAuth-protected MCP server as a user, authorized end to end.
//!
//! ```text
//! cargo run -p agent-identity-mcp-agent -- https://crm.example.com/mcp alice
//! ```
//!
//! The first run finds the server's authorization server (RFC 9728, then RFC 8414), registers a
//! client there (RFC 7591) and prints the link for the user to open; the browser comes back to
//! `http://127.0.0.1:8765/callback`, and the code becomes the user's tokens. Then the agent
//! lists the server's tools with the user's token, which is refreshed as it nears expiry.
//! Tokens and the registered client are kept in memory here: an agent that runs again keeps
//! them in a sealed file or a shared state (`FileTokens`, `SharedTokens`, `SharedClients`).
//!
//! `MCP_AGENT_SCOPES` (space-separated) names the scopes to ask for;
//! `MCP_AGENT_ALLOW_HTTP_LOOPBACK=1` lets a server on a loopback address speak plain HTTP.

use std::sync::Arc;

use agent_identity::CredentialRef;
use agent_identity::identity_dcr::{
    ClientMetadata, ClientProfile, ClientRegistry, Dcr, MemoryPersistence, Target,
};
use agent_identity::identity_http::{HttpClient, OutboundPolicy};
use agent_identity::identity_mcp::{AuthorizedClient, McpAuthorization};
use agent_identity::identity_oauth::{DelegatedTokenStore, MemoryTokens, Provider, check_callback};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALLBACK: &str = "http://127.0.0.1:8765/callback";

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
#[allow(clippy::print_stdout, reason = "an example reports on its output")]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(user)) = (args.next(), args.next()) else {
        return Err("usage: mcp-agent <MCP server URL> <user>".into());
    };
    let loopback = std::env::var("MCP_AGENT_ALLOW_HTTP_LOOPBACK").is_ok_and(|v| v == "1");
    let policy = OutboundPolicy::default().allow_http_loopback(loopback);
    let http = HttpClient::new(policy.clone())?;
    let scopes = std::env::var("MCP_AGENT_SCOPES").unwrap_or_default();

    // The server's authorization server is found from the server itself; the client is
    // registered there on first use.
    let registry = Arc::new(ClientRegistry::new(
        Dcr::new(policy)?,
        Arc::new(MemoryPersistence::default()),
    ));
    let profile = ClientProfile::new(
        "mcp-agent",
        ClientMetadata::web_app("mcp-agent", CALLBACK, scopes.clone()),
    );
    let provider = Provider::registered("mcp", registry, Target::Resource(server.clone()), profile)
        .scopes(scopes.split_whitespace().map(str::to_owned));
    let store = Arc::new(
        DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
            .provider(CredentialRef::new("user-mcp")?, provider),
    );

    // The user's consent: a link to open, the browser's return on loopback.
    let provider = store
        .provider_named("mcp")
        .ok_or("the provider is served")?;
    let (link, pending) = provider.authorize(CALLBACK, Some(&user)).await?;
    println!("Open this link to let the agent act for {user}:\n\n  {link}\n");
    let query = wait_for_callback().await?;
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let code = check_callback(&pending, &pairs)?;
    let tokens = provider
        .client()
        .await?
        .exchange_code(&pending, &code)
        .await?;
    store.connect(&user, "mcp", &tokens).await?;

    // Every request of the session carries the user's token.
    let authorization = McpAuthorization::new(store, "mcp", user)?;
    let transport = StreamableHttpClientTransport::with_client(
        AuthorizedClient::new(authorization, &http),
        StreamableHttpClientTransportConfig::with_uri(server),
    );
    let session = ().serve(transport).await?;
    for tool in session.list_all_tools().await? {
        println!("tool: {}", tool.name);
    }
    session.cancel().await?;
    Ok(())
}

/// Waits for the browser's return to the callback address: the query it carries.
async fn wait_for_callback() -> Result<Vec<(String, String)>, Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8765").await?;
    let (mut stream, _) = listener.accept().await?;
    let mut buffer = vec![0u8; 8192];
    let read = stream.read(&mut buffer).await?;
    let request = String::from_utf8_lossy(&buffer[..read]);
    let target = request
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .ok_or("the browser sent no request line")?;
    let url = url::Url::parse(&format!("http://127.0.0.1:8765{target}"))?;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nConnected: you can close this page.\n")
        .await?;
    Ok(url.query_pairs().into_owned().collect())
}
