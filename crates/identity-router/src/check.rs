//! Checking the credential a rule names (or its canary's) before it is granted.

use identity_core::{Credential, CredentialKind, CredentialRef, RequestContext};

use crate::canary::Arm;
use crate::outcome::{DenialReason, Gated, Resolution};
use crate::refusals::{missing_scopes, store_denial};
use crate::router::Router;
use crate::rules::CompiledRule;
use crate::scope::is_read_only;

/// What checking one rule's credential gave, and on which arm.
pub(crate) enum Checked {
    Granted(Resolution),
    Denied(DenialReason, Arm),
}

impl Router {
    /// The credential `rule` grants to `ctx`: its canary's when the caller is on the canary
    /// arm, its own otherwise, or when the canary is refused and the rule falls back.
    pub(crate) async fn check(&self, rule: &CompiledRule, ctx: &RequestContext) -> Checked {
        let Some(canary) = rule.canary.as_ref().filter(|c| c.picks(&rule.id, ctx)) else {
            return self
                .check_credential(rule, rule.store, &rule.credential_ref, ctx, Arm::Primary)
                .await;
        };
        let checked = self
            .check_credential(rule, canary.store, &canary.credential_ref, ctx, Arm::Canary)
            .await;
        match checked {
            Checked::Denied(reason, _) if canary.fall_back => {
                let mut checked = self
                    .check_credential(rule, rule.store, &rule.credential_ref, ctx, Arm::Primary)
                    .await;
                if let Checked::Granted(resolution) = &mut checked {
                    resolution.note(format!(
                        "the canary credential was refused ({}): fell back to the rule's own",
                        reason.code()
                    ));
                }
                checked
            }
            checked => checked,
        }
    }

    /// Asks store `store` for `credential_ref` and checks what it gives against `rule`.
    async fn check_credential(
        &self,
        rule: &CompiledRule,
        store: usize,
        credential_ref: &CredentialRef,
        ctx: &RequestContext,
        arm: Arm,
    ) -> Checked {
        let (store_name, store) = &self.settings.stores[store];
        let credential = match store.find_by_ref(credential_ref, ctx).await {
            Ok(Some(credential)) => credential,
            Ok(None) => {
                let reason = DenialReason::CredentialNotFound {
                    credential_ref: credential_ref.clone(),
                    store: store_name.clone(),
                };
                return Checked::Denied(reason, arm);
            }
            Err(err) => {
                let reason = store_denial(store_name, rule, credential_ref, &err, ctx);
                return Checked::Denied(reason, arm);
            }
        };
        if let Some(reason) = missing_scopes(rule, &credential, store_name, ctx) {
            return Checked::Denied(reason, arm);
        }
        match self.refusal(rule, &credential) {
            Some(reason) => Checked::Denied(reason, arm),
            None => Checked::Granted(grant(rule, credential, ctx, arm)),
        }
    }

    /// Why the rule may not hand out `credential`, if it may not.
    fn refusal(&self, rule: &CompiledRule, credential: &Credential) -> Option<DenialReason> {
        if !credential.status.is_usable() {
            return Some(DenialReason::NotActive {
                credential_id: credential.id.clone(),
                status: credential.status,
            });
        }
        if let Some(expected) = rule.credential_kind.filter(|k| *k != credential.kind) {
            return Some(DenialReason::KindMismatch {
                credential_id: credential.id.clone(),
                expected,
                actual: credential.kind,
            });
        }
        if let Some(expires_at) = credential.expires_at
            && credential.is_expired_at((self.settings.clock)(), self.settings.clock_skew)
        {
            return Some(DenialReason::Expired {
                credential_id: credential.id.clone(),
                expires_at,
            });
        }
        if rule.read_only && !is_read_only(&credential.scope) {
            return Some(DenialReason::NotReadOnly {
                credential_id: credential.id.clone(),
                scope: credential.scope.clone(),
            });
        }
        None
    }
}

fn grant(
    rule: &CompiledRule,
    credential: Credential,
    ctx: &RequestContext,
    arm: Arm,
) -> Resolution {
    let resolved_for = match credential.kind {
        CredentialKind::UserDelegated => ctx.user_id.clone(),
        CredentialKind::Fixed => "service".to_owned(),
    };
    Resolution {
        credential_id: credential.id,
        kind: credential.kind,
        credential_ref: credential.reference,
        resolved_for,
        expires_at: credential.expires_at,
        rule_id: rule.id.clone(),
        arm,
        scope: credential.scope,
        provider: credential.provider,
        delivery: rule.delivery.or(credential.delivery),
        secret: credential.secret,
        holds: Vec::new(),
        gated: rule.source.require_approval.as_ref().map(|demand| {
            Box::new(Gated {
                approval: Some(demand.clone()),
                ..Gated::default()
            })
        }),
    }
}
