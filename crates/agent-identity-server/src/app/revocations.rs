//! `/api/revocations`: revoking a credential, or a user's connection, on every replica.

use std::sync::Arc;

use agent_identity::OffsetDateTime;
use agent_identity::identity_revocation::{Revocation, Revocations, Revoked};
use agent_identity::layer::{json_error, no_store};
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::body::read_json_body;
use crate::auth::{Caller, Permission};

/// What `POST /api/revocations` revokes: a credential by id, or a user's connection to a
/// provider; with why.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevokeBody {
    credential_id: Option<String>,
    user_id: Option<String>,
    provider: Option<String>,
    reason: Option<String>,
}

/// The caller, when it may revoke; the refusal otherwise.
fn revoker(state: &AppState, request: &Request) -> Result<(Revocations, String), Box<Response>> {
    let Some(revocations) = state.revocations.clone() else {
        return Err(Box::new(json_error(
            StatusCode::NOT_FOUND,
            "revocations_not_configured",
            "no `[revocations]` section is configured",
        )));
    };
    match request.extensions().get::<Caller>() {
        Some(caller) if caller.permissions.contains(Permission::Revoke) => {
            Ok((revocations, caller.name.clone()))
        }
        _ => Err(Box::new(json_error(
            StatusCode::FORBIDDEN,
            "permission_required",
            "this needs an authenticated caller with the `revoke` permission",
        ))),
    }
}

fn answer(record: &Revoked, revoked_at_provider: Option<bool>) -> serde_json::Value {
    let mut body = serde_json::to_value(record).unwrap_or_default();
    if let Some(revoked) = revoked_at_provider {
        body["revokedAtProvider"] = json!(revoked);
    }
    body
}

/// `POST /api/revocations`: `{"credentialId"}` or `{"userId", "provider"}`, with an optional
/// `reason`. Answers once no replica serves what was revoked (after the configured
/// staleness): 200 with the record. A connection is first revoked at the provider (RFC 7009)
/// and forgotten, then its access token is refused wherever a copy of it remains.
pub(crate) async fn revoke(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (revocations, by) = match revoker(&state, &request) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let (parts, body) = request.into_parts();
    let body = match read_json_body(&parts, body, state.settings.body_limit_bytes).await {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let body: RevokeBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("not a revocation: {err}"),
            );
        }
    };
    let reason = body.reason.clone();
    let with = |revocation: Revocation| {
        let revocation = revocation.by(by.clone());
        match &reason {
            Some(reason) => revocation.because(reason.clone()),
            None => revocation,
        }
    };
    match (body.credential_id, body.user_id, body.provider) {
        (Some(id), None, None) if !id.is_empty() => {
            match revocations.revoke(with(Revocation::credential(id))).await {
                Ok(record) => no_store(Json(answer(&record, None)).into_response()),
                Err(err) => unavailable(&err),
            }
        }
        (None, Some(user), Some(provider)) if !user.is_empty() && !provider.is_empty() => {
            revoke_connection(&state, &revocations, &user, &provider, with).await
        }
        _ => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name either `credentialId`, or `userId` and `provider`",
        ),
    }
}

async fn revoke_connection(
    state: &AppState,
    revocations: &Revocations,
    user: &str,
    provider: &str,
    with: impl Fn(Revocation) -> Revocation,
) -> Response {
    let Some(endpoints) = state.oauth.as_ref() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "no `oauth` store is configured: there are no connections to revoke",
        );
    };
    if endpoints.store.provider_named(provider).is_none() {
        return json_error(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            &format!("no provider `{provider}` is configured"),
        );
    }
    let stored = match endpoints.store.stored(user, provider).await {
        Ok(stored) => stored,
        Err(err) => return unavailable(&err),
    };
    let Some(tokens) = stored else {
        return json_error(
            StatusCode::NOT_FOUND,
            "no_connection",
            &format!("{user} has no connection to {provider}"),
        );
    };
    // At the provider first: a revocation that fails there leaves the connection as it is.
    let revoked_at_provider = match endpoints.store.disconnect(user, provider).await {
        Ok(revoked) => revoked,
        Err(err) => {
            tracing::warn!(error = %err, "a connection could not be revoked at its provider");
            return json_error(
                StatusCode::BAD_GATEWAY,
                "provider_refused",
                "the provider did not revoke the connection; it is left in place",
            );
        }
    };
    // Copies of the access token may sit in caches: refuse it everywhere until it lapses.
    let until = tokens
        .expires_at
        .unwrap_or_else(|| OffsetDateTime::now_utc() + time::Duration::days(1));
    let revocation = with(Revocation::secret(&tokens.access_token).until(until));
    match revocations.revoke(revocation).await {
        Ok(record) => no_store(Json(answer(&record, Some(revoked_at_provider))).into_response()),
        Err(err) => unavailable(&err),
    }
}

fn unavailable(err: &agent_identity::Error) -> Response {
    tracing::warn!(error = %err, "a revocation could not be recorded");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "revocations_unavailable",
        "the revocation list could not be written; nothing was revoked by it",
    )
}

/// `GET /api/revocations`: the revocations in force as this replica sees them (the `revoke`
/// permission).
pub(crate) async fn list(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (revocations, _) = match revoker(&state, &request) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let list = revocations.list();
    no_store(Json(json!({ "revocations": list.entries() })).into_response())
}
