//! Why a store's answer is refused: its error as a denial reason, and scopes a rule requires.

use identity_core::{Credential, CredentialRef, RequestContext};

use crate::outcome::DenialReason;
use crate::rules::CompiledRule;

/// The denial for a store's error: a refusal for what the caller cannot have, unavailable for
/// what may work later.
pub(crate) fn store_denial(
    store: &str,
    rule: &CompiledRule,
    credential_ref: &CredentialRef,
    err: &identity_core::Error,
    ctx: &RequestContext,
) -> DenialReason {
    use identity_core::Error;
    let refused = |code: &str| DenialReason::StoreRefused {
        store: store.to_owned(),
        backend_code: code.to_owned(),
        detail: err.to_string(),
    };
    match err {
        // The store's message names the slot; the denial names the store and (with the rule)
        // nothing else.
        Error::NotFound { .. } => DenialReason::CredentialNotFound {
            credential_ref: credential_ref.clone(),
            store: store.to_owned(),
        },
        Error::Protocol { code, .. } => refused(code),
        Error::ConsentRequired {
            provider,
            scopes,
            detail,
            ..
        } => {
            // One consent should be enough: ask for the rule's required scopes at once.
            let mut scopes = scopes.clone();
            for required in &rule.source.require_scopes {
                if !scopes.contains(required) {
                    scopes.push(required.clone());
                }
            }
            DenialReason::ConsentRequired {
                store: store.to_owned(),
                provider: provider.clone(),
                user_id: ctx.user_id.clone(),
                scopes,
                detail: detail.clone(),
            }
        }
        Error::Unauthenticated { .. } => refused("unauthenticated"),
        Error::PermissionDenied { .. } => refused("permission_denied"),
        _ => DenialReason::StoreUnavailable {
            store: store.to_owned(),
            detail: err.to_string(),
            retryable: err.is_retryable(),
        },
    }
}

/// `consent_required` when `credential` lacks a scope the rule requires (`requireScopes`),
/// naming the ones missing.
pub(crate) fn missing_scopes(
    rule: &CompiledRule,
    credential: &Credential,
    store: &str,
    ctx: &RequestContext,
) -> Option<DenialReason> {
    let required = &rule.source.require_scopes;
    if required.is_empty() {
        return None;
    }
    let held: Vec<&str> = credential.scope.split_ascii_whitespace().collect();
    let missing: Vec<String> = required
        .iter()
        .filter(|scope| !held.contains(&scope.as_str()))
        .cloned()
        .collect();
    (!missing.is_empty()).then(|| DenialReason::ConsentRequired {
        store: store.to_owned(),
        provider: credential
            .provider
            .clone()
            .unwrap_or_else(|| ctx.provider.clone()),
        user_id: ctx.user_id.clone(),
        detail: format!(
            "the credential lacks the scope{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(" ")
        ),
        scopes: missing,
    })
}
