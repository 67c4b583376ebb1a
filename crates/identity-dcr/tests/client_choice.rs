//! How a client comes to be at a server: registered in advance, else a Client ID Metadata
//! Document, else dynamic registration; one record per issuer. oidc-provider has no metadata
//! documents, so a small fake authorization server stands in: it only serves metadata and
//! counts registrations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use identity_dcr::{
    ClientMetadata, ClientProfile, ClientRegistry, Dcr, MemoryPersistence, RegisteredClient,
};
use serde_json::json;

#[derive(Clone)]
struct Fake {
    base: String,
    registrations: Arc<AtomicUsize>,
}

async fn metadata(State(fake): State<Fake>, Path(name): Path<String>) -> axum::response::Response {
    if name == "openid-only" {
        return StatusCode::NOT_FOUND.into_response();
    }
    metadata_of(&fake, &name).into_response()
}

/// OpenID discovery, at `{issuer}/.well-known/openid-configuration`.
async fn openid(State(fake): State<Fake>, Path(name): Path<String>) -> impl IntoResponse {
    metadata_of(&fake, &name)
}

fn metadata_of(fake: &Fake, name: &str) -> axum::Json<serde_json::Value> {
    let issuer = format!("{}/{name}", fake.base);
    let registration = match name {
        "expiring" => "reg-expiring",
        "bad-registration" => "reg-bad",
        _ => "reg",
    };
    axum::Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{}/token", fake.base),
        "registration_endpoint": format!("{}/{registration}", fake.base),
        "client_id_metadata_document_supported": name == "cimd",
    }))
}

async fn register(State(fake): State<Fake>) -> impl IntoResponse {
    let n = fake.registrations.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"client_id": format!("registered-{n}"), "client_secret": "s", "client_secret_expires_at": 0}),
        ),
    )
}

/// A registration whose secret expires a second after it is issued.
async fn register_expiring(State(fake): State<Fake>) -> impl IntoResponse {
    let n = fake.registrations.fetch_add(1, Ordering::SeqCst);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"client_id": format!("expiring-{n}"), "client_secret": "s", "client_secret_expires_at": expires}),
        ),
    )
}

/// A registration answer that RFC 7591 does not allow: 200 instead of 201, no `client_id`.
async fn register_badly() -> impl IntoResponse {
    axum::Json(json!({"client_secret": "s"}))
}

/// The same without the status problem: 201, still no `client_id`.
async fn register_without_id() -> impl IntoResponse {
    (
        StatusCode::CREATED,
        axum::Json(json!({"client_secret": "s"})),
    )
}

async fn fake_server() -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = Fake {
        base: format!("http://{}", listener.local_addr().unwrap()),
        registrations: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server/{name}",
            get(metadata),
        )
        .route("/reg", post(register))
        .route("/reg-expiring", post(register_expiring))
        .route("/reg-bad", post(register_badly))
        .route("/reg-no-id", post(register_without_id))
        .route("/{name}/.well-known/openid-configuration", get(openid))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

fn registry() -> ClientRegistry {
    ClientRegistry::new(
        Dcr::new(identity_http::OutboundPolicy::default().allow_http_loopback(true)).unwrap(),
        Arc::new(MemoryPersistence::default()),
    )
}

fn document() -> url::Url {
    url::Url::parse("https://agent.example.com/oauth/client-metadata.json").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_document_is_used_where_the_server_accepts_one_and_registration_elsewhere() {
    let fake = fake_server().await;
    let registry = registry();
    let profile = ClientProfile::new("agent", ClientMetadata::service("agent", "read"))
        .with_metadata_document(document());

    let cimd = registry
        .get_or_create(&format!("{}/cimd", fake.base), &profile)
        .await
        .unwrap();
    assert_eq!(cimd.client_id, document().as_str());
    assert!(cimd.client_secret.is_none());
    assert_eq!(fake.registrations.load(Ordering::SeqCst), 0);

    let dcr = registry
        .get_or_create(&format!("{}/dcr-only", fake.base), &profile)
        .await
        .unwrap();
    assert_eq!(dcr.client_id, "registered-0");
    assert_eq!(fake.registrations.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_registered_in_advance_comes_first() {
    let fake = fake_server().await;
    let issuer = format!("{}/cimd", fake.base);
    let known = RegisteredClient::from_registration_answer(
        &issuer,
        json!({"client_id": "configured-agent", "client_secret": "configured-secret"}),
    )
    .unwrap();
    let profile = ClientProfile::new("agent", ClientMetadata::service("agent", "read"))
        .with_metadata_document(document())
        .with_pre_registered(known);
    let client = registry().get_or_create(&issuer, &profile).await.unwrap();
    assert_eq!(client.client_id, "configured-agent");
    assert_eq!(fake.registrations.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_issuer_gets_its_own_registration() {
    let fake = fake_server().await;
    let registry = registry();
    let profile = ClientProfile::new("agent", ClientMetadata::service("agent", "read"));
    let first = registry
        .get_or_create(&format!("{}/a", fake.base), &profile)
        .await
        .unwrap();
    let second = registry
        .get_or_create(&format!("{}/b", fake.base), &profile)
        .await
        .unwrap();
    assert_ne!(first.client_id, second.client_id);
    assert_eq!(second.issuer, format!("{}/b", fake.base));
    // Asked again, each issuer keeps its own.
    let again = registry
        .get_or_create(&format!("{}/a", fake.base), &profile)
        .await
        .unwrap();
    assert_eq!(again.client_id, first.client_id);
    assert_eq!(fake.registrations.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_secret_expired_is_registered_again() {
    let fake = fake_server().await;
    let registry = registry();
    let issuer = format!("{}/expiring", fake.base);
    let profile = ClientProfile::new("agent", ClientMetadata::service("agent", "read"));
    let first = registry.get_or_create(&issuer, &profile).await.unwrap();
    assert!(first.client_secret_expires_at.is_some());
    assert_eq!(
        registry
            .get_or_create(&issuer, &profile)
            .await
            .unwrap()
            .client_id,
        first.client_id
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let second = registry.get_or_create(&issuer, &profile).await.unwrap();
    assert_ne!(second.client_id, first.client_id);
    assert_eq!(fake.registrations.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_discovery_is_the_fallback() {
    let fake = fake_server().await;
    let issuer = format!("{}/openid-only", fake.base);
    let dcr = Dcr::new(identity_http::OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let metadata = dcr.discover(&issuer).await.unwrap();
    assert_eq!(metadata.issuer, issuer);
    assert!(metadata.supports_registration());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_answers_rfc_7591_does_not_allow_are_refused() {
    let fake = fake_server().await;
    let dcr = Dcr::new(identity_http::OutboundPolicy::default().allow_http_loopback(true)).unwrap();
    let mut server = dcr
        .discover(&format!("{}/bad-registration", fake.base))
        .await
        .unwrap();
    let metadata = ClientMetadata::service("agent", "read");
    let not_created = dcr.register(&server, &metadata, None).await.unwrap_err();
    assert!(not_created.to_string().contains("200"), "{not_created}");
    server.registration_endpoint =
        Some(url::Url::parse(&format!("{}/reg-no-id", fake.base)).unwrap());
    let no_id = dcr.register(&server, &metadata, None).await.unwrap_err();
    assert!(no_id.to_string().contains("client_id"), "{no_id}");
}
