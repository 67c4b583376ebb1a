//! `POST /api/resolve` and `POST /api/migrate/resolve`: plain handlers with one error type.

use agent_identity::layer::{json_error, no_store};
use agent_identity::{
    Intent, InvalidInput, MigrationRequest, PairDenial, Purpose, RequestContext, Resolution,
    format_rfc3339,
};
use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde_json::{Value, json};

use std::sync::Arc;

use super::AppState;
use super::body::read_json_body;
use crate::auth::Caller;

/// Why a resolve endpoint answers with an error: each is a JSON body `{"error", "code", ...}`,
/// not to be cached, with no secret and no internal detail in it.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The body could not be taken: not JSON (415), too large (413), empty or unreadable (400).
    Body {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The body is JSON but not a valid request: 400 listing each bad field.
    Invalid(Box<InvalidInput>),
    /// An authenticated caller bound to one user asked for another: 403.
    CallerMismatch,
    /// The body names a workload (`spiffeId`) the caller did not prove it is: 403.
    WorkloadMismatch,
    /// The router refused: 403 with the denial's reason code (the answer is made already: a
    /// `consent_required` one carries a connect link).
    Denied(Box<Response>),
    /// The router refused one side of a migration pair, or both: 403.
    PairDenied(Box<PairDenial>),
    /// A delivery was refused before or after resolving: 403 with the reason's code.
    Undelivered(Undelivered),
}

/// Why `POST /api/deliver` gives no secret although the caller is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undelivered {
    /// The caller does not hold the `receive-secrets` permission (or nobody is authenticated).
    CallerMayNotReceive,
    /// Neither the credential nor its rule allows delivery (`delivery = "reveal"`).
    ProxyOnly,
    /// The credential chosen holds no secret.
    NoSecret,
}

impl Undelivered {
    /// The stable code in the JSON body and the audit event.
    pub(crate) const fn code(self) -> &'static str {
        match self {
            Self::CallerMayNotReceive => "caller_may_not_receive_secrets",
            Self::ProxyOnly => "credential_not_deliverable",
            Self::NoSecret => "credential_has_no_secret",
        }
    }

    const fn message(self) -> &'static str {
        match self {
            Self::CallerMayNotReceive => {
                "delivery needs an authenticated caller with the `receive-secrets` permission"
            }
            Self::ProxyOnly => {
                "the credential is proxy-only: neither it nor its rule says `delivery = \"reveal\"`"
            }
            Self::NoSecret => "the credential chosen holds no secret",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Body {
                status,
                code,
                message,
            } => json_error(status, code, &message),
            Self::Invalid(err) => {
                let details: serde_json::Map<String, Value> = err
                    .problems
                    .iter()
                    .map(|p| (p.field.clone(), Value::String(p.problem.to_string())))
                    .collect();
                let body = json!({ "error": err.to_string(), "code": "invalid_request", "details": details });
                no_store((StatusCode::BAD_REQUEST, Json(body)).into_response())
            }
            Self::CallerMismatch => json_error(
                StatusCode::FORBIDDEN,
                "caller_user_mismatch",
                "the request names a different user than the authenticated caller",
            ),
            Self::WorkloadMismatch => json_error(
                StatusCode::FORBIDDEN,
                "caller_workload_mismatch",
                "the request names a workload (`spiffeId`) the authenticated caller did not prove it is",
            ),
            Self::Denied(answer) => *answer,
            Self::PairDenied(denial) => {
                let (side, code) = match (&denial.source, &denial.target) {
                    (Some(source), Some(_)) => ("both", source.reason.code()),
                    (Some(source), None) => ("source", source.reason.code()),
                    (None, Some(target)) => ("target", target.reason.code()),
                    (None, None) => ("both", "denied"),
                };
                let body = json!({ "error": denial.to_string(), "code": code, "side": side });
                no_store((StatusCode::FORBIDDEN, Json(body)).into_response())
            }
            Self::Undelivered(reason) => {
                json_error(StatusCode::FORBIDDEN, reason.code(), reason.message())
            }
        }
    }
}

/// The body of a granted `POST /api/resolve`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResolveAnswer {
    ok: bool,
    credential_id: String,
    resolved_for: String,
    expires_at: Option<String>,
    /// `canary` when the rule's canary credential was granted; absent otherwise, so that the
    /// reference's answer is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    arm: Option<&'static str>,
    /// The signed attestation, when asked with `?attest=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    attestation: Option<String>,
}

/// `POST /api/resolve`.
pub(crate) async fn resolve(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // Checked before resolving: a request the sidecar cannot attest resolves nothing.
    let attestor = match attest_asked(&parts)? {
        true => Some(state.attestor.as_deref().ok_or(ApiError::Body {
            status: StatusCode::BAD_REQUEST,
            code: "attestation_not_configured",
            message: "`attest=true` asks for an attestation, and no `[attestation]` key is configured".into(),
        })?),
        false => None,
    };
    let (context, resolution) = resolve_body(&state, &parts, body, Purpose::Resolve).await?;
    let attestation = match attestor {
        Some(attestor) => {
            let caller = parts.extensions.get::<Caller>().map(|c| c.name.as_str());
            Some(
                attestor
                    .attest(&context, &resolution, caller)
                    .map_err(|err| {
                        tracing::error!(error = %err, "an attestation could not be signed");
                        ApiError::Body {
                            status: StatusCode::INTERNAL_SERVER_ERROR,
                            code: "attestation_failed",
                            message: "the attestation could not be signed".into(),
                        }
                    })?,
            )
        }
        None => None,
    };
    Ok(no_store(
        Json(ResolveAnswer {
            ok: true,
            credential_id: resolution.credential_id,
            resolved_for: resolution.resolved_for,
            expires_at: resolution.expires_at.map(format_rfc3339),
            arm: resolution
                .arm
                .is_canary()
                .then_some(resolution.arm.as_str()),
            attestation,
        })
        .into_response(),
    ))
}

/// Whether the query asks for an attestation: `attest=true` (or `1`); `false`, `0` or no
/// `attest` do not. Any other value is refused rather than read as either.
fn attest_asked(parts: &Parts) -> Result<bool, ApiError> {
    let mut asked = false;
    for (key, value) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        if key == "attest" {
            asked = match &*value {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::Body {
                        status: StatusCode::BAD_REQUEST,
                        code: "invalid_request",
                        message: "the query parameter `attest` must be `true` or `false`".into(),
                    });
                }
            };
        }
    }
    Ok(asked)
}

/// The request context in `body` (a JSON object), checked against the caller and given the
/// caller's token, and what the router grants it for `purpose`.
pub(crate) async fn resolve_body(
    state: &AppState,
    parts: &Parts,
    body: axum::body::Body,
    purpose: Purpose,
) -> Result<(RequestContext, Resolution), ApiError> {
    let body = read_json_body(parts, body, state.settings.body_limit_bytes).await?;
    let mut context =
        RequestContext::from_slice(&body).map_err(|err| ApiError::Invalid(Box::new(err)))?;
    check_caller(parts, &context.user_id)?;
    bind_workload(parts, &mut context.spiffe_id)?;
    context.subject_token = subject_token(parts);
    context.actor_token = actor_token(parts);
    let mut intent = Intent::new(purpose);
    intent.requester = parts
        .extensions
        .get::<Caller>()
        .map(|caller| caller.name.clone());
    let resolution = state
        .router
        .resolve_for(&context, &intent)
        .await
        .map_err(|denial| {
            ApiError::Denied(Box::new(super::denials::denial_answer(
                state.oauth.as_deref(),
                &denial,
                StatusCode::FORBIDDEN,
            )))
        })?;
    Ok((context, resolution))
}

/// `POST /api/migrate/resolve`.
pub(crate) async fn migrate(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_json_body(&parts, body, state.settings.body_limit_bytes).await?;
    let mut migration =
        MigrationRequest::from_slice(&body).map_err(|err| ApiError::Invalid(Box::new(err)))?;
    check_caller(&parts, &migration.user_id)?;
    bind_workload(&parts, &mut migration.spiffe_id)?;
    migration.subject_token = subject_token(&parts);
    migration.actor_token = actor_token(&parts);
    let pair = state
        .router
        .resolve_pair(&migration)
        .await
        .map_err(|denial| ApiError::PairDenied(Box::new(denial)))?;
    Ok(no_store(
        Json(json!({
            "migrationId": pair.migration_id,
            "phase": pair.phase,
            "sourceCredentialId": pair.source.credential_id,
            "sourceResolvedFor": pair.source.resolved_for,
            "targetCredentialId": pair.target.credential_id,
            "targetResolvedFor": pair.target.resolved_for,
            "dryRun": pair.dry_run,
            "expiresAt": pair.expires_at.map(format_rfc3339),
        }))
        .into_response(),
    ))
}

/// The caller's own token, when authentication found one (never from the body).
fn subject_token(parts: &Parts) -> Option<agent_identity::SubjectToken> {
    parts
        .extensions
        .get::<Caller>()
        .and_then(|caller| caller.subject_token.clone())
}

/// The calling workload's own token, when it proved itself with one (a JWT-SVID).
fn actor_token(parts: &Parts) -> Option<agent_identity::SubjectToken> {
    parts
        .extensions
        .get::<Caller>()
        .and_then(|caller| caller.actor_token.clone())
}

/// The workload of the request is the authenticated caller's: a body's `spiffeId` must equal the
/// workload the caller proved, and is filled in from it when absent. A caller that proved none
/// may name none. Without authentication (no caller) the body's value stands, as in the
/// reference.
pub(crate) fn bind_workload(parts: &Parts, spiffe_id: &mut Option<String>) -> Result<(), ApiError> {
    let Some(caller) = parts.extensions.get::<Caller>() else {
        return Ok(());
    };
    match (&caller.workload, spiffe_id.as_deref()) {
        (Some(proved), None) => {
            *spiffe_id = Some(proved.as_str().to_owned());
            Ok(())
        }
        (Some(proved), Some(named)) if proved.as_str() == named => Ok(()),
        (None, None) => Ok(()),
        _ => Err(ApiError::WorkloadMismatch),
    }
}

/// The request names `user_id`; an authenticated caller bound to another user may not ask.
pub(crate) fn check_caller(parts: &Parts, user_id: &str) -> Result<(), ApiError> {
    match parts
        .extensions
        .get::<Caller>()
        .and_then(|c| c.user_id.as_deref())
    {
        Some(bound) if bound != user_id => Err(ApiError::CallerMismatch),
        _ => Ok(()),
    }
}
