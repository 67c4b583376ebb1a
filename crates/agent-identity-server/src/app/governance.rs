//! `POST /api/authorize`: a permission check without resolving anything; and `/api/approvals`:
//! approvers list, approve and reject held calls, and break glass where it is allowed.

use std::collections::BTreeMap;
use std::sync::Arc;

use agent_identity::identity_approval::{Approval, ApprovalError, Approvals};
use agent_identity::identity_policy::{Query, ResourceRef};
use agent_identity::layer::{json_error, no_store};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::body::read_json_body;
use super::resolve::{ApiError, bind_workload, check_caller};
use crate::auth::{Caller, Permission};

/// The body of `POST /api/authorize`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuthorizeRequest {
    /// The user the agent acts for.
    user_id: Option<String>,
    /// The calling workload (filled in from the caller's proof).
    spiffe_id: Option<String>,
    /// `resolve`, `deliver`, `proxy`, `connect`, `call-tool`, `use-skill`.
    action: String,
    /// `{"type": "tool", "id": "send_email"}`.
    resource: ResourceRef,
    /// Facts, each a string (`risk`, `provider`, ...).
    #[serde(default)]
    context: BTreeMap<String, String>,
}

/// `POST /api/authorize`: what the permission policies decide of an agent's tool, skill or
/// other call, resolving nothing.
pub(crate) async fn authorize(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(files) = &state.policies else {
        return Ok(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no permission policies are configured",
        ));
    };
    let (parts, body) = request.into_parts();
    let body = read_json_body(&parts, body, state.settings.body_limit_bytes).await?;
    let mut asked: AuthorizeRequest =
        serde_json::from_slice(&body).map_err(|err| ApiError::Body {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: format!("not a permission check: {err}"),
        })?;
    if let Some(user) = &asked.user_id {
        check_caller(&parts, user)?;
    } else if let Some(bound) = caller(&parts).and_then(|caller| caller.user_id.clone()) {
        asked.user_id = Some(bound);
    }
    bind_workload(&parts, &mut asked.spiffe_id)?;
    if asked.user_id.is_none() && asked.spiffe_id.is_none() {
        return Err(ApiError::Body {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: "name the user (`userId`) or the workload (`spiffeId`) the check is for"
                .into(),
        });
    }
    let mut query = Query::new(asked.action, asked.resource);
    if let Some(user) = asked.user_id {
        query = query.user(user);
    }
    if let Some(workload) = asked.spiffe_id {
        query = query.workload(workload);
    }
    for (name, value) in asked.context {
        query = query.fact(name, value);
    }
    // A check of its own has no rule to say a permit is optional: one must permit it.
    let decision = files.gate.policies().authorize(&query, true);
    tracing::info!(
        target: "agent_identity::audit",
        action = query.action.as_str(),
        resource = query.resource.id.as_str(),
        user = query.user.as_deref(),
        workload = query.workload.as_deref(),
        allowed = decision.allowed,
        policies = ?decision.policies,
        "permission checked"
    );
    let mut answer = json!({
        "allowed": decision.allowed,
        "decision": if decision.allowed { "allow" } else { "deny" },
        "policies": decision.policies,
        "reason": decision.explain(),
        "errors": decision.errors,
    });
    if let Some(demand) = &decision.approval {
        answer["approvalRequired"] = json!(demand);
    }
    Ok(no_store(Json(answer).into_response()))
}

fn caller(parts: &Parts) -> Option<&Caller> {
    parts.extensions.get::<Caller>()
}

/// The approvals and the caller, when it holds `permission`.
fn approver<'a>(
    state: &'a AppState,
    parts: &'a Parts,
    permission: Permission,
    name: &str,
) -> Result<(&'a Approvals, &'a Caller), Box<Response>> {
    let Some(approvals) = &state.approvals else {
        return Err(Box::new(json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no approvals are configured",
        )));
    };
    match caller(parts) {
        Some(caller) if caller.permissions.contains(permission) => Ok((approvals, caller)),
        _ => Err(Box::new(json_error(
            StatusCode::FORBIDDEN,
            "permission_required",
            &format!("this needs an authenticated caller with the `{name}` permission"),
        ))),
    }
}

fn refused(err: &ApprovalError) -> Response {
    let status = match err {
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::NotPending { .. } | ApprovalError::AlreadyApproved(_) => {
            StatusCode::CONFLICT
        }
        ApprovalError::Expired(_) => StatusCode::GONE,
        ApprovalError::JustificationRequired => StatusCode::BAD_REQUEST,
        ApprovalError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::FORBIDDEN,
    };
    json_error(status, err.code(), &err.to_string())
}

/// An approval as the API shows it: its signed statement included (it is public).
fn shown(approval: &Approval) -> serde_json::Value {
    let mut body = crate::notify::approval_json(approval);
    body["statement"] = json!(approval.statement);
    body
}

/// `GET /api/approvals`: every approval kept, newest first.
pub(crate) async fn list(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let (approvals, _) = match approver(&state, &parts, Permission::Approve, "approve") {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match approvals.list().await {
        Ok(all) => no_store(
            Json(json!({ "approvals": all.iter().map(shown).collect::<Vec<_>>() })).into_response(),
        ),
        Err(err) => refused(&err),
    }
}

/// `GET /api/approvals/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let (approvals, _) = match approver(&state, &parts, Permission::Approve, "approve") {
        Ok(found) => found,
        Err(response) => return *response,
    };
    match approvals.get(&id).await {
        Ok(approval) => no_store(Json(shown(&approval)).into_response()),
        Err(err) => refused(&err),
    }
}

/// The optional body of a decision: `{"reason": ...}` or `{"justification": ...}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
    justification: Option<String>,
}

async fn decision_body(
    state: &AppState,
    body: axum::body::Body,
) -> Result<DecisionBody, Box<Response>> {
    let bytes = axum::body::to_bytes(body, state.settings.body_limit_bytes)
        .await
        .map_err(|_| {
            Box::new(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is too large",
            ))
        })?;
    if bytes.is_empty() {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(&bytes).map_err(|err| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("not a decision: {err}"),
        ))
    })
}

/// `POST /api/approvals/{id}/approve`: the caller approves, as itself.
pub(crate) async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (approvals, caller) = match approver(&state, &parts, Permission::Approve, "approve") {
        Ok(found) => found,
        Err(response) => return *response,
    };
    if let Err(response) = decision_body(&state, body).await {
        return *response;
    }
    match approvals.approve(&id, &caller.name).await {
        Ok(approval) => no_store(Json(shown(&approval)).into_response()),
        Err(err) => refused(&err),
    }
}

/// `POST /api/approvals/{id}/reject`, with an optional `{"reason"}`.
pub(crate) async fn reject(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (approvals, caller) = match approver(&state, &parts, Permission::Approve, "approve") {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let decision = match decision_body(&state, body).await {
        Ok(decision) => decision,
        Err(response) => return *response,
    };
    match approvals.reject(&id, &caller.name, decision.reason).await {
        Ok(approval) => no_store(Json(shown(&approval)).into_response()),
        Err(err) => refused(&err),
    }
}

/// `POST /api/approvals/{id}/break-glass`, with `{"justification"}`: needs the `break-glass`
/// permission, and a demand that allows it.
pub(crate) async fn break_glass(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (approvals, caller) = match approver(&state, &parts, Permission::BreakGlass, "break-glass")
    {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let decision = match decision_body(&state, body).await {
        Ok(decision) => decision,
        Err(response) => return *response,
    };
    let justification = decision.justification.unwrap_or_default();
    match approvals
        .break_glass(&id, &caller.name, &justification)
        .await
    {
        Ok(approval) => no_store(Json(shown(&approval)).into_response()),
        Err(err) => refused(&err),
    }
}

/// `GET /api/approvals/key`: the public key that signs granted approvals, as a JWK set.
pub(crate) async fn key(State(state): State<Arc<AppState>>) -> Response {
    match &state.approvals {
        Some(approvals) => {
            Json(json!({ "keys": [approvals.signer().verifier().jwk()] })).into_response()
        }
        None => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no approvals are configured",
        ),
    }
}
