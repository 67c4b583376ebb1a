//! `/proxy/{upstream}/{*path}`: the injection proxy (`identity_proxy`), any method.

use std::sync::Arc;

use agent_identity::identity_proxy::{Caller as ProxyCaller, ProxyError};
use agent_identity::layer::json_error;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::AppState;
use crate::auth::Caller;

/// Proxies the call, or answers why not with the resolve endpoint's JSON errors (a denial is
/// the same 403); 502 and 504 when the upstream fails.
pub(crate) async fn proxy(
    State(state): State<Arc<AppState>>,
    Path((upstream, path)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Some(proxy) = &state.proxy else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no upstream is configured",
        );
    };
    let caller = request
        .extensions()
        .get::<Caller>()
        .map(|caller| {
            let mut proxied =
                ProxyCaller::new(caller.user_id.clone(), caller.subject_token.clone())
                    .with_name(caller.name.as_str());
            if let Some(workload) = &caller.workload {
                proxied = proxied.with_workload(workload.as_str());
            }
            if let Some(token) = &caller.actor_token {
                proxied = proxied.with_actor_token(token.clone());
            }
            proxied
        })
        .unwrap_or_default();
    match proxy.forward(&upstream, &path, caller, request).await {
        Ok(response) => response.into_response(),
        Err(ProxyError::Denied(denial)) => super::denials::denial_answer(
            state.oauth.as_deref(),
            &denial,
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(err) => json_error(err.status(), err.code(), &err.to_string()),
    }
}
