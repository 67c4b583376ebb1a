//! `/health` reports a store that does not answer, from the background monitor's last check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic in a test is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use agent_identity::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, MemoryCredentialStore,
    RequestContext, Router, async_trait,
};
use agent_identity_server::app::health::HealthMonitor;
use agent_identity_server::app::metrics::Metrics;
use agent_identity_server::app::settings::ServerSettings;
use agent_identity_server::app::{AppState, app};
use agent_identity_server::auth::Authenticator;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A backend that can be switched off, counting how often it is asked for its health. A real
/// backend that is down answers the same `Unavailable`; this one does it on demand.
#[derive(Debug, Default)]
struct Switchable {
    down: AtomicBool,
    checks: AtomicUsize,
}

#[async_trait]
impl CredentialStore for Switchable {
    fn backend(&self) -> &'static str {
        "switchable"
    }
    async fn health(&self) -> Result<(), Error> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(Error::unavailable("switchable", "connection refused"))
        } else {
            Ok(())
        }
    }
    async fn find_by_ref(
        &self,
        _: &CredentialRef,
        _: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        Ok(None)
    }
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
    async fn list_by_kind(&self, _: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}

async fn health(app: &axum::Router) -> (StatusCode, serde_json::Value) {
    let request = Request::get("/health")
        .header("host", "127.0.0.1:3001")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn a_store_down_makes_health_503_and_probes_never_reach_the_store() {
    let backend = Arc::new(Switchable::default());
    let memory = MemoryCredentialStore::new();
    memory.insert(Credential::new("c", CredentialKind::Fixed, "r").unwrap());
    let router = Arc::new(
        Router::builder()
            .default_store(memory)
            .store("remote", backend.clone())
            .build()
            .unwrap(),
    );
    let monitor = HealthMonitor::start(router.clone()).await;
    let state = AppState {
        router,
        health: monitor.clone(),
        metrics: Arc::new(Metrics::new()),
        settings: Arc::new(ServerSettings::default()),
        authenticator: Arc::new(Authenticator::none()),
        bound: "127.0.0.1:3001".parse().unwrap(),
        oauth: None,
        proxy: None,
        policies: None,
        approvals: None,
        web: None,
        reloader: None,
        mcp: None,
        attestor: None,
        revocations: None,
    };
    let app = app(state);

    let (status, body) = health(&app).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["credentialCount"], 1);

    // A hundred probes ask no store.
    let checks = backend.checks.load(Ordering::SeqCst);
    for _ in 0..100 {
        health(&app).await;
    }
    assert_eq!(backend.checks.load(Ordering::SeqCst), checks);

    backend.down.store(true, Ordering::SeqCst);
    let monitoring = tokio::spawn(monitor.run(Duration::from_millis(50)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ok"], false);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["unavailableStores"], serde_json::json!(["remote"]));
    assert!(
        !body.to_string().contains("connection refused"),
        "no internal detail: {body}"
    );

    backend.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health(&app).await.0, StatusCode::OK);
    monitoring.abort();
}
