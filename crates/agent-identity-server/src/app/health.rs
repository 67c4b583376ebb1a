//! Store health, checked in the background so that a health probe never calls a store.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use agent_identity::layer::no_store;
use agent_identity::{OffsetDateTime, Router, format_rfc3339};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::AppState;

/// What the last check found.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Stores that did not answer, by name.
    pub unavailable: Vec<String>,
    /// Credentials the stores list (both kinds, every status).
    pub credential_count: usize,
    /// When the check ran.
    pub checked_at: OffsetDateTime,
}

/// The latest [`Snapshot`], shared with the health endpoint.
#[derive(Debug)]
pub struct HealthMonitor {
    router: Arc<Router>,
    snapshot: RwLock<Snapshot>,
}

impl HealthMonitor {
    /// Checks the stores once, so that the first probe already has an answer.
    pub async fn start(router: Arc<Router>) -> Arc<Self> {
        let snapshot = check(&router).await;
        Arc::new(Self {
            router,
            snapshot: RwLock::new(snapshot),
        })
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks again every `interval`; run in the background.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let snapshot = check(&self.router).await;
            if !snapshot.unavailable.is_empty() {
                tracing::warn!(stores = ?snapshot.unavailable, "stores unavailable");
            }
            *self
                .snapshot
                .write()
                .unwrap_or_else(PoisonError::into_inner) = snapshot;
        }
    }
}

async fn check(router: &Router) -> Snapshot {
    let mut unavailable = Vec::new();
    let mut credential_count = 0;
    for (name, store) in router.stores() {
        let counted = async {
            store.health().await?;
            store.count().await
        };
        match tokio::time::timeout(Duration::from_secs(5), counted).await {
            Ok(Ok(count)) => credential_count += count,
            _ => unavailable.push(name.to_owned()),
        }
    }
    Snapshot {
        unavailable,
        credential_count,
        checked_at: OffsetDateTime::now_utc(),
    }
}

/// `GET /health` and `GET /api/health`: the last check of the stores, never a new one.
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let snapshot = state.health.snapshot();
    let healthy = snapshot.unavailable.is_empty();
    let rules = state.router.rule_count();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "ok": healthy,
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": format_rfc3339(OffsetDateTime::now_utc()),
        "credentialsLoaded": snapshot.credential_count,
        "rulesLoaded": rules,
        "credentialCount": snapshot.credential_count,
        "ruleCount": rules,
        "unavailableStores": snapshot.unavailable,
        "checkedAt": format_rfc3339(snapshot.checked_at),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store((status, Json(body)).into_response())
}
