//! Discovery, registration and management against a real authorization server (oidc-provider,
//! `fixtures/oidc-provider`), and tokens for routing from dynamically registered clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;

use identity_core::{CredentialRef, CredentialStore, Error, RoutingRule, Secret};
use identity_dcr::{
    ClientMetadata, ClientProfile, ClientRegistry, Dcr, DcrCredentialStore, DcrSlot,
    MemoryPersistence, SharedClients, Target,
};
use identity_router::Router;
use identity_test_support::{AuthorizationServer, request_context};

fn dcr() -> Dcr {
    Dcr::new(identity_http::OutboundPolicy::default().allow_http_loopback(true)).unwrap()
}

fn profile() -> ClientProfile {
    ClientProfile::new("crm", ClientMetadata::service("billing-agent", "crm:read"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_register_read_update_delete() {
    let server = AuthorizationServer::start().await;
    let dcr = dcr();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    assert_eq!(metadata.issuer, server.issuer());
    assert_eq!(
        metadata.token_endpoint.as_ref().unwrap().as_str(),
        server.token_endpoint()
    );
    assert!(metadata.supports_registration());

    let client = dcr
        .register(
            &metadata,
            &ClientMetadata::service("billing-agent", "crm:read"),
            None,
        )
        .await
        .unwrap();
    assert!(!client.client_id.is_empty());
    assert!(client.client_secret.is_some() && client.registration_access_token.is_some());
    assert_eq!(client.client_secret_expires_at, None);
    assert_eq!(
        client.metadata.client_name.as_deref(),
        Some("billing-agent")
    );
    let shown = format!("{client:?}");
    assert!(!shown.contains(client.client_secret.as_ref().unwrap().expose_secret()));

    let read = dcr.read(&client).await.unwrap();
    assert_eq!(read.client_id, client.client_id);
    assert_eq!(read.metadata.grant_types, ["client_credentials"]);

    let mut renamed = read.metadata.clone();
    renamed.client_name = Some("billing-agent v2".into());
    let updated = dcr.update(&read, &renamed).await.unwrap();
    assert_eq!(
        updated.metadata.client_name.as_deref(),
        Some("billing-agent v2")
    );
    assert_eq!(
        dcr.read(&updated)
            .await
            .unwrap()
            .metadata
            .client_name
            .as_deref(),
        Some("billing-agent v2")
    );

    // A forged registration access token is refused.
    let mut forged = updated.clone();
    forged.registration_access_token = Some(Secret::new("not-the-token"));
    // One error model: a 4xx carrying an OAuth error object is a refusal with its code.
    let err = dcr.read(&forged).await.unwrap_err();
    assert!(
        matches!(&err, Error::Protocol { backend: "dcr", code, .. } if code == "invalid_token"),
        "{err:?}"
    );

    dcr.delete(&updated).await.unwrap();
    let gone = dcr.read(&updated).await.unwrap_err();
    assert!(
        matches!(&gone, Error::Protocol { code, .. } if code == "invalid_token"),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_access_token_is_sent_where_registration_demands_one() {
    let server =
        AuthorizationServer::start_with_env(&[("FIXTURE_INITIAL_ACCESS_TOKEN", "iat-canary")])
            .await;
    let dcr = dcr();
    let metadata = dcr.discover(server.issuer()).await.unwrap();
    let service = ClientMetadata::service("agent", "crm:read");
    let refused = dcr.register(&metadata, &service, None).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Protocol { code, .. } if code == "invalid_token"),
        "{refused:?}"
    );
    let wrong = dcr
        .register(&metadata, &service, Some(&Secret::new("wrong")))
        .await
        .unwrap_err();
    assert!(!format!("{wrong} {wrong:?}").contains("wrong\""));
    let client = dcr
        .register(&metadata, &service, Some(&Secret::new("iat-canary")))
        .await
        .unwrap();
    assert!(!client.client_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_callers_share_one_registration() {
    let server = AuthorizationServer::start().await;
    let registry = Arc::new(ClientRegistry::new(
        dcr(),
        Arc::new(MemoryPersistence::default()),
    ));
    let profile = profile();
    let calls = (0..100).map(|_| registry.get_or_create(server.issuer(), &profile));
    let clients = futures::future::join_all(calls).await;
    let first = clients[0].as_ref().unwrap().client_id.clone();
    assert!(
        clients
            .iter()
            .all(|c| c.as_ref().unwrap().client_id == first)
    );
    // Idempotent afterwards too, and it is the registration the server holds.
    let again = registry
        .get_or_create(server.issuer(), &profile)
        .await
        .unwrap();
    assert_eq!(again.client_id, first);
    assert_eq!(registry.dcr().read(&again).await.unwrap().client_id, first);
    assert!(registry.supports_dcr(server.issuer()).await.unwrap());
}

/// Three replicas sharing `state`, a hundred first uses spread over them: one registration.
async fn replicas_register_once(state: Arc<dyn identity_state::SharedState>) {
    let server = AuthorizationServer::start().await;
    let ring = identity_seal::Keyring::new("k1", [5; 32]);
    let replicas: Vec<Arc<ClientRegistry>> = (0..3)
        .map(|_| {
            Arc::new(ClientRegistry::new(
                dcr(),
                Arc::new(SharedClients::new(state.clone(), ring.clone())),
            ))
        })
        .collect();
    let profile = profile();
    let calls = (0..100).map(|n| replicas[n % 3].get_or_create(server.issuer(), &profile));
    let clients = futures::future::join_all(calls).await;
    let first = clients[0].as_ref().unwrap().client_id.clone();
    assert!(
        clients
            .iter()
            .all(|c| c.as_ref().unwrap().client_id == first)
    );
    assert_eq!(server.registrations().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_register_once() {
    let redis_server = identity_test_support::RedisServer::start().await;
    let redis = identity_redis::RedisConfig::new(redis_server.url())
        .connect("redis", &|_| None)
        .unwrap();
    replicas_register_once(Arc::new(redis.state("clients").unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_vault_register_once() {
    use identity_test_support::{BAO_ROOT_TOKEN, OpenBao};
    use identity_vault::{VaultAuth, VaultCredentialStore};
    let bao = OpenBao::start().await;
    bao.enable_kv2("kv").await;
    let vault =
        VaultCredentialStore::builder(bao.address(), VaultAuth::token(Secret::new(BAO_ROOT_TOKEN)))
            .mount("kv")
            .build()
            .unwrap();
    replicas_register_once(Arc::new(vault.documents("clients").unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_share_nothing_register_each() {
    // What shared state prevents: three processes with their own memory register thrice.
    let server = AuthorizationServer::start().await;
    let profile = profile();
    for _ in 0..3 {
        ClientRegistry::new(dcr(), Arc::new(MemoryPersistence::default()))
            .get_or_create(server.issuer(), &profile)
            .await
            .unwrap();
    }
    assert_eq!(server.registrations().await, 3);
}

fn slot(issuer: &str) -> DcrSlot {
    DcrSlot {
        reference: CredentialRef::new("crm-service").unwrap(),
        target: Target::Issuer(issuer.to_owned()),
        scopes: vec!["crm:read".into()],
        profile: profile(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_reaches_the_router_from_a_dynamically_registered_client() {
    let server = AuthorizationServer::start().await;
    let registry = Arc::new(ClientRegistry::new(
        dcr(),
        Arc::new(MemoryPersistence::default()),
    ));
    let store = DcrCredentialStore::new(registry.clone(), vec![slot(server.issuer())]);
    let router = Router::builder()
        .default_store(store)
        .rule(RoutingRule::new("crm", "crm-service").with_priority(1))
        .build()
        .unwrap();
    let granted = router.resolve(&request_context()).await.unwrap();
    let token = granted.secret().unwrap().expose_secret().to_owned();
    assert!(!token.is_empty());
    assert!(granted.expires_at.is_some());
    // Cached: the same token for the next resolution.
    let again = router.resolve(&request_context()).await.unwrap();
    assert_eq!(again.secret().unwrap().expose_secret(), token);
    let client = registry
        .load(server.issuer(), "crm")
        .await
        .unwrap()
        .unwrap();
    let introspected = server.introspect(&token).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(
        introspected["client_id"],
        client.client_id.as_str(),
        "{introspected}"
    );
    assert_eq!(introspected["scope"], "crm:read", "{introspected}");
    assert!(!client.client_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_deleted_at_the_server_is_registered_again_transparently() {
    let server = AuthorizationServer::start().await;
    let registry = Arc::new(ClientRegistry::new(
        dcr(),
        Arc::new(MemoryPersistence::default()),
    ));
    let first_store = DcrCredentialStore::new(registry.clone(), vec![slot(server.issuer())]);
    let slot_ref = CredentialRef::new("crm-service").unwrap();
    assert!(
        first_store
            .find_by_ref(&slot_ref, &request_context())
            .await
            .unwrap()
            .is_some()
    );
    let deleted = registry
        .load(server.issuer(), "crm")
        .await
        .unwrap()
        .unwrap();
    registry.dcr().delete(&deleted).await.unwrap();

    // A store with no cached token asks again: `invalid_client`, then a new registration.
    let second_store = DcrCredentialStore::new(registry.clone(), vec![slot(server.issuer())]);
    let credential = second_store
        .find_by_ref(&slot_ref, &request_context())
        .await
        .unwrap()
        .unwrap();
    assert!(credential.secret.is_some());
    let replacement = registry
        .load(server.issuer(), "crm")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(replacement.client_id, deleted.client_id);
}

/// A protected resource (an MCP server, say) that answers 401 with an RFC 9728 challenge and
/// serves its metadata naming `issuer`. RFC 9728 metadata is the resource server's, not the
/// authorization server's, so the test serves it itself.
async fn protected_resource(issuer: String) -> String {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let challenge = format!(r#"Bearer error="invalid_token", resource_metadata="{metadata_url}""#);
    let document = serde_json::json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "scopes_supported": ["crm:read"],
    });
    let app = axum::Router::new()
        .route(
            "/mcp",
            get(move || {
                let challenge = challenge.clone();
                async move {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, challenge)],
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    resource
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_chain_resource_to_authorization_server_to_registration_to_token() {
    let server = AuthorizationServer::start().await;
    let resource = protected_resource(server.issuer().to_owned()).await;

    // An agent calls the resource without a token and reads the challenge.
    let answer = identity_test_support::http_client()
        .get(&resource)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let challenge = answer.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = identity_http::resource_metadata_from_challenge(&challenge).unwrap();
    let dcr = dcr();
    let metadata = dcr
        .discover_resource(&resource, Some(&metadata_url))
        .await
        .unwrap();
    assert_eq!(metadata.authorization_servers, [server.issuer()]);
    // The well-known location gives the same answer.
    let well_known = dcr.discover_resource(&resource, None).await.unwrap();
    assert_eq!(
        well_known.authorization_servers,
        metadata.authorization_servers
    );

    // A slot configured with the resource alone: discovery, registration and a token.
    let registry = Arc::new(ClientRegistry::new(
        dcr,
        Arc::new(MemoryPersistence::default()),
    ));
    let store = DcrCredentialStore::new(
        registry.clone(),
        vec![DcrSlot {
            reference: CredentialRef::new("mcp").unwrap(),
            target: Target::Resource(resource.clone()),
            scopes: vec!["crm:read".into()],
            profile: profile(),
        }],
    );
    let credential = store
        .find_by_ref(&CredentialRef::new("mcp").unwrap(), &request_context())
        .await
        .unwrap()
        .unwrap();
    let token = credential.secret.unwrap().expose_secret().to_owned();
    assert_eq!(server.introspect(&token).await["active"], true);
    assert!(
        registry
            .load(server.issuer(), "crm")
            .await
            .unwrap()
            .is_some()
    );
}
