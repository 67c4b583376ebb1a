//! The audit event of each resolution.

use identity_core::RequestContext;
use tracing::info;

use crate::outcome::{Denial, Resolution};

/// The audit event of one resolution, on target `agent_identity::audit`. It names the request,
/// the rule, the credential and the outcome; never a secret.
pub(crate) fn audit(ctx: &RequestContext, outcome: &Result<Resolution, Denial>) {
    // Fields that do not apply to an outcome are `None`, which records nothing.
    let (message, granted, denied) = match outcome {
        Ok(resolution) => ("credential granted", Some(resolution), None),
        Err(denial) => ("credential denied", None, Some(denial)),
    };
    // Text is recorded as `&str`: every subscriber gets a structured string, and the cheapest
    // path through formatters (the sidecar's writes it as is; request fields hold no control
    // character, the context refuses them).
    info!(
        target: "agent_identity::audit",
        message,
        outcome = if granted.is_some() { "granted" } else { "denied" },
        trace_id = ctx.trace_id.as_str(),
        user_id = ctx.user_id.as_str(),
        resource_id = ctx.resource_id.as_str(),
        resource_kind = ctx.resource_kind.as_str(),
        provider = ctx.provider.as_str(),
        model = ctx.model.as_str(),
        action = ctx.action.as_str(),
        migration_id = ctx.migration_id.as_deref(),
        phase = ctx.phase.map(|p| p.as_str()),
        rule_id = granted
            .map(|r| &*r.rule_id)
            .or_else(|| denied.and_then(|d| d.rule_id.as_deref())),
        credential_id = granted.map(|r| r.credential_id.as_str()),
        credential_kind = granted.map(|r| r.kind.as_str()),
        resolved_for = granted.map(|r| r.resolved_for.as_str()),
        reason = denied.map(|d| d.reason.code()),
        detail = denied.map(tracing::field::display),
    );
}
