//! The answer to a denial: what the agent needs to act on it. A `consent_required` one carries
//! the provider, the scopes and a connect link for the user; a `budget_exhausted` one says when
//! to try again (`Retry-After`); an `approval_required` one the approval to wait for; a
//! `not_permitted` one the policies that decided.

use agent_identity::layer::{denial_response, no_store};
use agent_identity::{Denial, DenialReason, format_rfc3339};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::oauth::OAuthEndpoints;
use super::oauth::connect::consent_link;

/// The answer to `denial`, 403; `budget_status` for `budget_exhausted` (429 on the proxy, where
/// clients take it as "slow down"; 403 on the resolve endpoints, as every denial there).
pub(crate) fn denial_answer(
    endpoints: Option<&OAuthEndpoints>,
    denial: &Denial,
    budget_status: StatusCode,
) -> Response {
    match &denial.reason {
        DenialReason::ConsentRequired {
            provider,
            user_id,
            scopes,
            ..
        } => {
            let mut body = json!({
                "error": denial.to_string(),
                "code": denial.reason.code(),
                "provider": provider,
                "scopes": scopes,
            });
            if let Some((url, expires)) = consent_link(endpoints, provider, user_id, scopes) {
                body["connectUrl"] = url.into();
                body["connectUrlExpiresAt"] = format_rfc3339(expires).into();
            }
            no_store((StatusCode::FORBIDDEN, axum::Json(body)).into_response())
        }
        DenialReason::BudgetExhausted {
            budget,
            retry_after_secs,
        } => {
            let body = json!({
                "error": denial.to_string(),
                "code": denial.reason.code(),
                "budget": budget,
                "retryAfterSecs": retry_after_secs,
            });
            let mut response = no_store((budget_status, axum::Json(body)).into_response());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            response
        }
        DenialReason::ApprovalRequired {
            approval_id,
            summary,
            approvals_needed,
            expires_at,
        } => {
            let body = json!({
                "error": denial.to_string(),
                "code": denial.reason.code(),
                "approvalId": approval_id,
                "summary": summary,
                "approvalsNeeded": approvals_needed,
                "expiresAt": format_rfc3339(*expires_at),
            });
            no_store((StatusCode::FORBIDDEN, axum::Json(body)).into_response())
        }
        DenialReason::NotPermitted { policies, .. } => {
            let body = json!({
                "error": denial.to_string(),
                "code": denial.reason.code(),
                "policies": policies,
            });
            no_store((StatusCode::FORBIDDEN, axum::Json(body)).into_response())
        }
        _ => denial_response(denial),
    }
}
