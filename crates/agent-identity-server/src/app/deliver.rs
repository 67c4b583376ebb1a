//! `POST /api/deliver`: a credential's secret handed to a caller, for a tool that reads it from
//! its environment (`agent-identity exec`).
//!
//! Both sides must allow it: the credential or its rule says `delivery = "reveal"`, and the
//! caller is authenticated with the `receive-secrets` permission. Every attempt, delivered or
//! refused, is an audit event; the answer is never cached.

use std::sync::Arc;

use agent_identity::layer::no_store;
use agent_identity::{Delivery, Resolution, format_rfc3339};
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::resolve::{ApiError, Undelivered, resolve_body};
use crate::auth::{Caller, Permission};

/// The body of a delivery.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Delivered<'a> {
    ok: bool,
    credential_id: &'a str,
    resolved_for: &'a str,
    expires_at: Option<String>,
    secret: &'a str,
}

/// `POST /api/deliver`: the body is a request context, as for `POST /api/resolve`.
pub(crate) async fn deliver(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>();
    let caller_name = caller.map_or("anonymous", |caller| caller.name.as_str());
    // Refused before anything is resolved: a caller without the permission must not cause a
    // token exchange or a store read.
    if !caller.is_some_and(|caller| caller.permissions.contains(Permission::ReceiveSecrets)) {
        audit_refusal(caller_name, None, Undelivered::CallerMayNotReceive);
        return Err(ApiError::Undelivered(Undelivered::CallerMayNotReceive));
    }
    let (context, resolution) =
        resolve_body(&state, &parts, body, agent_identity::Purpose::Deliver).await?;
    if resolution.delivery != Delivery::Reveal {
        audit_refusal(caller_name, Some(&resolution), Undelivered::ProxyOnly);
        return Err(ApiError::Undelivered(Undelivered::ProxyOnly));
    }
    let Some(secret) = resolution.secret() else {
        audit_refusal(caller_name, Some(&resolution), Undelivered::NoSecret);
        return Err(ApiError::Undelivered(Undelivered::NoSecret));
    };
    tracing::info!(
        target: "agent_identity::audit",
        message = "secret delivered",
        caller = caller_name,
        rule_id = &*resolution.rule_id,
        credential_id = resolution.credential_id.as_str(),
        resolved_for = resolution.resolved_for.as_str(),
        trace_id = context.trace_id.as_str(),
    );
    Ok(no_store(
        Json(Delivered {
            ok: true,
            credential_id: &resolution.credential_id,
            resolved_for: &resolution.resolved_for,
            expires_at: resolution.expires_at.map(format_rfc3339),
            secret: secret.expose_secret(),
        })
        .into_response(),
    ))
}

/// The audit event of a refused delivery: who asked, what was chosen (when anything was), why.
fn audit_refusal(caller: &str, resolution: Option<&Resolution>, reason: Undelivered) {
    tracing::info!(
        target: "agent_identity::audit",
        message = "delivery refused",
        caller,
        rule_id = resolution.map(|r| &*r.rule_id),
        credential_id = resolution.map(|r| r.credential_id.as_str()),
        reason = reason.code(),
    );
}
