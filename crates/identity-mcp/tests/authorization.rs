//! The MCP authorization flow end to end: an rmcp client, authorized by this crate, calls a
//! protected MCP server built with the official MCP Python SDK, whose tokens oidc-provider
//! issues and introspects.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use identity_core::{CredentialRef, Error};
use identity_dcr::{ClientMetadata, ClientProfile, ClientRegistry, Dcr, MemoryPersistence, Target};
use identity_http::{HttpClient, OutboundPolicy};
use identity_mcp::{AuthorizedClient, McpAuthorization};
use identity_oauth::{DelegatedTokenStore, MemoryTokens, Provider, check_callback};
use identity_test_support::{AuthorizationServer, ProtectedMcpServer};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

const REDIRECT: &str = "http://127.0.0.1:3001/oauth/crm/callback";

/// A token store serving `crm`: the MCP server's authorization server found from its
/// metadata, a client registered there, tokens refreshed within `window` of their expiry.
fn store(resource: &str, policy: &OutboundPolicy, window: Duration) -> Arc<DelegatedTokenStore> {
    let registry = Arc::new(ClientRegistry::new(
        Dcr::new(policy.clone()).unwrap(),
        Arc::new(MemoryPersistence::default()),
    ));
    let profile = ClientProfile::new(
        "mcp-crm",
        ClientMetadata::web_app("agent", REDIRECT, "crm:read offline_access"),
    );
    let provider = Provider::registered(
        "crm",
        registry,
        Target::Resource(resource.to_owned()),
        profile,
    )
    .scopes(["crm:read", "offline_access"])
    .prompt("consent");
    Arc::new(
        DelegatedTokenStore::new(Arc::new(MemoryTokens::default()))
            .provider(CredentialRef::new("user-crm").unwrap(), provider)
            .refresh_window(window),
    )
}

/// Alice consents in her browser (oidc-provider's headless login), and the code becomes her
/// connection.
async fn consent(server: &AuthorizationServer, store: &DelegatedTokenStore) {
    let provider = store.provider_named("crm").unwrap();
    let (url, pending) = provider.authorize(REDIRECT, Some("alice")).await.unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let has = |name: &str, value: &str| query.iter().any(|(k, v)| k == name && v == value);
    assert!(has("code_challenge_method", "S256"), "{url}");
    assert!(
        has("resource", pending.resources[0].as_str()),
        "the resource indicator: {url}"
    );
    let callback = server.follow_authorization(url.as_str(), REDIRECT).await;
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let code = check_callback(&pending, &pairs).unwrap_or_else(|err| panic!("{err}: {callback}"));
    let tokens = provider
        .client()
        .await
        .unwrap()
        .exchange_code(&pending, &code)
        .await
        .unwrap();
    store.connect("alice", "crm", &tokens).await.unwrap();
}

/// Calls the server's `whoami` tool through a client authorized as alice.
async fn whoami(
    resource: &str,
    store: &Arc<DelegatedTokenStore>,
    http: &HttpClient,
) -> Result<String, String> {
    let authorization = McpAuthorization::new(store.clone(), "crm", "alice").unwrap();
    let client = AuthorizedClient::new(authorization, http);
    let transport = StreamableHttpClientTransport::with_client(
        client,
        StreamableHttpClientTransportConfig::with_uri(resource),
    );
    let session = ().serve(transport).await.map_err(|err| format!("{err:?}"))?;
    let result = session
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .map_err(|err| format!("{err:?}"))?;
    let _ = session.cancel().await;
    Ok(result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.clone()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_a_protected_mcp_server_as_the_user_through_the_whole_flow() {
    // Tokens live 120 s and are refreshed in their last 117: due three seconds after issue.
    let server = AuthorizationServer::start_with_env(&[("FIXTURE_ACCESS_TOKEN_TTL", "120")]).await;
    let protected = ProtectedMcpServer::start(server.issuer()).await;
    let policy = OutboundPolicy::default().allow_http_loopback(true);
    let http = HttpClient::new(policy.clone()).unwrap();
    let resource = protected.resource().to_owned();

    // The first call, without a token: 401, naming the resource's metadata.
    let first = reqwest::Client::new()
        .post(&resource)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 401);
    let challenge = first.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("resource_metadata=\"http://127.0.0.1:"),
        "{challenge}"
    );

    let store = store(&resource, &policy, Duration::from_secs(117));
    // Before alice consents, a call asks for her consent and sends nothing.
    let refused = whoami(&resource, &store, &http).await.unwrap_err();
    assert!(refused.contains("ConsentRequired"), "{refused}");

    // Discovery, registration, PKCE with the resource, the code, the token.
    consent(&server, &store).await;
    assert_eq!(server.registrations().await, 1);
    assert_eq!(whoami(&resource, &store, &http).await.unwrap(), "alice");
    assert_eq!(server.refreshes().await, (0, 0));

    // The token comes due: the next call refreshes it first (once), and succeeds.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(whoami(&resource, &store, &http).await.unwrap(), "alice");
    assert_eq!(server.refreshes().await, (1, 0));

    // Alice revokes the grant at the authorization server: the server refuses the token, its
    // refresh is refused, and the call asks for her consent again.
    let provider = store.provider_named("crm").unwrap();
    let tokens = store.stored("alice", "crm").await.unwrap().unwrap();
    assert!(provider.revoke(&tokens).await.unwrap());
    let refused = whoami(&resource, &store, &http).await.unwrap_err();
    assert!(refused.contains("ConsentRequired"), "{refused}");
    let authorization = McpAuthorization::new(store.clone(), "crm", "alice").unwrap();
    assert!(matches!(
        authorization.access_token().await,
        Err(Error::ConsentRequired { .. })
    ));
    // Consent again: the calls go on.
    consent(&server, &store).await;
    assert_eq!(whoami(&resource, &store, &http).await.unwrap(), "alice");
    // One client throughout.
    assert_eq!(server.registrations().await, 1);
}
