//! The protocol against a real authorization server: oidc-provider with the project's RFC 8693
//! grant (`fixtures/oidc-provider`). Requests are built and answers read by this crate;
//! identity-http carries them, once each (no retry).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use identity_core::Secret;
use identity_http::{HttpClient, OutboundPolicy, Retry};
use identity_test_support::{
    AuthorizationServer, CLIENT_ID, CLIENT_SECRET, CRM, CRM_API, ERP, POST_CLIENT_ID,
    POST_CLIENT_SECRET,
};
use identity_token_exchange::{
    ClientAuth, ExchangeConfig, ExchangeConfigBuilder, ExchangedToken, OAuthError, OAuthErrorCode,
    TokenRequest, read_token_response,
};

fn config(server: &AuthorizationServer) -> ExchangeConfigBuilder {
    ExchangeConfig::builder("crm-token", CLIENT_ID)
        .token_endpoint(server.token_endpoint())
        .allow_http_loopback(true)
        .client_secret(Secret::new(CLIENT_SECRET))
}

async fn exchange(
    config: &ExchangeConfig,
    subject: &str,
    actor: Option<&str>,
) -> Result<ExchangedToken, OAuthError> {
    let actor = actor.map(Secret::new);
    let request = TokenRequest::new(
        config.token_endpoint().unwrap(),
        config,
        &Secret::new(subject),
        actor.as_ref(),
    );
    let http = HttpClient::new(OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let answer = http
        .oauth_answer(
            request.url(),
            Some(config.client()),
            request.form(),
            Retry::once(),
            "exchange",
        )
        .await?;
    read_token_response(config, &answer)
}

fn refused(result: Result<ExchangedToken, OAuthError>) -> OAuthErrorCode {
    match result {
        Err(OAuthError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn exchange_for_an_audience_gives_the_users_token_for_that_audience() {
    let server = AuthorizationServer::start().await;
    let subject = server.subject_token("alice", "crm:read crm:write").await;
    let config = config(&server).audience(CRM).build().unwrap();
    let token = exchange(&config, &subject, None).await.unwrap();
    assert_eq!(
        token.issued_token_type,
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert!(token.lifetime_from_server && token.lifetime.as_secs() > 0);
    let seen = server.introspect(token.access_token.expose_secret()).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["aud"], CRM);
    assert_eq!(seen["client_id"], CLIENT_ID);
    assert_ne!(token.access_token.expose_secret(), subject);
}

#[tokio::test]
async fn exchange_for_a_resource_and_with_down_scoping() {
    let server = AuthorizationServer::start().await;
    let subject = server
        .subject_token("alice", "crm:read crm:write erp:read")
        .await;
    let config = config(&server)
        .resource(CRM_API)
        .scopes(["crm:read"])
        .build()
        .unwrap();
    let token = exchange(&config, &subject, None).await.unwrap();
    assert_eq!(token.scope.as_deref(), Some("crm:read"));
    let seen = server.introspect(token.access_token.expose_secret()).await;
    assert_eq!(
        (seen["aud"].as_str(), seen["scope"].as_str()),
        (Some(CRM_API), Some("crm:read"))
    );
}

#[tokio::test]
async fn each_refusal_of_the_rfc_is_typed() {
    let server = AuthorizationServer::start().await;
    let subject = server.subject_token("alice", "crm:read").await;

    let escalation = config(&server)
        .audience(CRM)
        .scopes(["crm:write"])
        .build()
        .unwrap();
    assert_eq!(
        refused(exchange(&escalation, &subject, None).await),
        OAuthErrorCode::InvalidScope
    );

    let elsewhere = config(&server)
        .audience(ERP)
        .scopes(["erp:read"])
        .build()
        .unwrap();
    assert_eq!(
        refused(exchange(&elsewhere, &subject, None).await),
        OAuthErrorCode::InvalidScope
    );

    let unknown = config(&server)
        .audience("https://unknown.example.com")
        .build()
        .unwrap();
    assert_eq!(
        refused(exchange(&unknown, &subject, None).await),
        OAuthErrorCode::InvalidTarget
    );

    let fine = config(&server).audience(CRM).build().unwrap();
    assert_eq!(
        refused(exchange(&fine, "not-a-token-the-server-issued", None).await),
        OAuthErrorCode::InvalidGrant
    );

    let wrong_secret = ExchangeConfig::builder("crm-token", CLIENT_ID)
        .token_endpoint(server.token_endpoint())
        .allow_http_loopback(true)
        .client_secret(Secret::new("wrong"))
        .audience(CRM)
        .build()
        .unwrap();
    assert_eq!(
        refused(exchange(&wrong_secret, &subject, None).await),
        OAuthErrorCode::InvalidClient
    );

    server.revoke(&subject).await;
    assert_eq!(
        refused(exchange(&fine, &subject, None).await),
        OAuthErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn client_secret_post_authenticates_in_the_body() {
    let server = AuthorizationServer::start().await;
    let subject = server.subject_token("carol", "crm:read").await;
    let config = ExchangeConfig::builder("crm-token", POST_CLIENT_ID)
        .token_endpoint(server.token_endpoint())
        .allow_http_loopback(true)
        .client_auth(ClientAuth::ClientSecretPost)
        .client_secret(Secret::new(POST_CLIENT_SECRET))
        .audience(CRM)
        .build()
        .unwrap();
    assert!(exchange(&config, &subject, None).await.is_ok());
}

#[tokio::test]
async fn two_users_get_two_tokens_each_with_its_own_subject() {
    let server = AuthorizationServer::start().await;
    let config = config(&server).audience(CRM).build().unwrap();
    let alice = exchange(
        &config,
        &server.subject_token("alice", "crm:read").await,
        None,
    )
    .await
    .unwrap();
    let bob = exchange(
        &config,
        &server.subject_token("bob", "crm:read").await,
        None,
    )
    .await
    .unwrap();
    assert_ne!(
        alice.access_token.expose_secret(),
        bob.access_token.expose_secret()
    );
    assert_eq!(
        server.introspect(alice.access_token.expose_secret()).await["sub"],
        "alice"
    );
    assert_eq!(
        server.introspect(bob.access_token.expose_secret()).await["sub"],
        "bob"
    );
    assert_eq!(server.exchanges().await, 2);
}

#[tokio::test]
async fn delegation_names_the_actor() {
    let server = AuthorizationServer::start().await;
    let subject = server.subject_token("bob", "crm:read").await;
    let actor = server.subject_token("agent-7", "crm:read").await;
    let config = config(&server).audience(CRM).build().unwrap();
    let token = exchange(&config, &subject, Some(&actor)).await.unwrap();
    let seen = server.introspect(token.access_token.expose_secret()).await;
    assert_eq!(seen["sub"], "bob");
    assert_eq!(seen["act"]["sub"], "agent-7");
}
