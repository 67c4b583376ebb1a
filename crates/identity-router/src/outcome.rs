//! What a resolution gives: a [`Resolution`], or a [`Denial`] with its reason.

use std::fmt;
use std::sync::Arc;

use identity_core::{
    ApprovalRequirement, CredentialKind, CredentialRef, CredentialStatus, Delivery, MigrationPhase,
    OffsetDateTime, Secret, format_rfc3339,
};
use serde::Serialize;

use crate::canary::Arm;
use crate::rules::Mismatch;
use crate::usage::{Usage, UsageMeter};

/// A granted credential: which one, for whom, until when, by which rule; and its secret behind
/// an explicit accessor.
///
/// `Debug` shows everything but the secret. There is no `Serialize`: a response is built from
/// the fields it needs, so that the secret cannot reach one by accident.
///
/// ```
/// # use std::sync::Arc;
/// # use identity_core::*;
/// # use identity_router::Router;
/// # let store = identity_memory::MemoryCredentialStore::new();
/// # store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?.with_secret(Secret::new("sk-1")));
/// # let router = Router::builder().default_store(store)
/// #     .rule(RoutingRule::new("r1", "slot").with_priority(1)).build().unwrap();
/// # let ctx = RequestContext::builder().user_id("u").resource_id("r").resource_kind(ResourceKind::Shared)
/// #     .provider("p").model("m").action("read").trace_id("t").build().unwrap();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let resolution = router.resolve(&ctx).await.unwrap();
/// assert_eq!(resolution.resolved_for, "service");
/// assert_eq!(resolution.secret().unwrap().expose_secret(), "sk-1");
/// assert!(!format!("{resolution:?}").contains("sk-1"));
/// # });
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolution {
    /// The credential's id.
    pub credential_id: String,
    /// The credential's kind.
    pub kind: CredentialKind,
    /// The credential's slot.
    pub credential_ref: CredentialRef,
    /// The user for a user-delegated credential, `"service"` otherwise.
    pub resolved_for: String,
    /// When the credential expires, if it does.
    pub expires_at: Option<OffsetDateTime>,
    /// The rule that decided.
    pub rule_id: Arc<str>,
    /// Whether the credential is the rule's own or its canary's.
    pub arm: Arm,
    /// The credential's scope.
    pub scope: String,
    /// The credential's provider.
    pub provider: Option<String>,
    /// Whether the secret may be delivered to a caller: `reveal` when the rule or the
    /// credential says so.
    pub delivery: Delivery,
    pub(crate) secret: Option<Secret>,
    /// What a gate keeps for as long as the credential is in use (a concurrency slot): dropped
    /// with the last clone of the resolution.
    pub(crate) holds: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    /// What gates added to the grant; allocated only when one does (or the rule demands
    /// approval), so that a plain resolution stays small to move.
    pub(crate) gated: Option<Box<Gated>>,
}

/// What gates add to a grant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gated {
    /// What gates said of the grant (the policies that permitted it), for explanations.
    pub(crate) notes: Vec<String>,
    /// The approval the call still needs (from its rule or a policy), until a gate settles it.
    pub(crate) approval: Option<ApprovalRequirement>,
    /// Whether an approval was used up for this grant: the call it approved is made once.
    pub(crate) approved: bool,
    /// Told of what the call made with the credential used (a spend budget).
    pub(crate) meters: Vec<Arc<dyn UsageMeter>>,
}

impl Resolution {
    /// The credential's secret, when its store holds one. Expose it only where it is sent.
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    fn gated(&mut self) -> &mut Gated {
        self.gated.get_or_insert_with(Box::default)
    }

    /// Keeps `hold` for as long as this resolution (or a clone) lives: a gate's concurrency
    /// slot is given back when the call that uses the credential is over.
    pub fn keep(&mut self, hold: impl std::any::Any + Send + Sync) {
        self.holds.push(Arc::new(hold));
    }

    /// Records what a gate decided of this grant (the policies that permitted it), shown by
    /// explanations. Never a secret.
    pub fn note(&mut self, note: impl Into<String>) {
        self.gated().notes.push(note.into());
    }

    /// Demands that the call be approved before it uses the credential. Joined with a demand
    /// already made (the rule's), the stricter holds ([`ApprovalRequirement::stricter`]). An
    /// approval gate must settle it: a demand no gate settles refuses the grant.
    pub fn demand_approval(&mut self, demand: ApprovalRequirement) {
        let gated = self.gated();
        gated.approval = Some(match gated.approval.take() {
            Some(earlier) => earlier.stricter(&demand),
            None => demand,
        });
    }

    /// The approval the call still needs, if any.
    pub fn approval_demanded(&self) -> Option<&ApprovalRequirement> {
        self.gated.as_ref()?.approval.as_ref()
    }

    /// Marks the demanded approval as given (an approval gate found a granted approval of
    /// this exact call, and used it up).
    pub fn settle_approval(&mut self) {
        let gated = self.gated();
        gated.approval = None;
        gated.approved = true;
    }

    /// Whether an approval was used up for this grant: the approved call is made once, and
    /// not again (after a 401, say) without a new approval.
    pub fn was_approved(&self) -> bool {
        self.gated.as_ref().is_some_and(|gated| gated.approved)
    }

    /// Puts `meter` on the resolution: whoever makes the call with the credential reports what
    /// it used ([`Resolution::report_usage`]), and the meter is told (a spend budget).
    pub fn meter(&mut self, meter: impl UsageMeter) {
        self.gated().meters.push(Arc::new(meter));
    }

    /// Whether any meter wants to know what the call used (so that the caller reads it).
    pub fn is_metered(&self) -> bool {
        self.gated
            .as_ref()
            .is_some_and(|gated| !gated.meters.is_empty())
    }

    /// The meters on the resolution.
    pub fn meters(&self) -> &[Arc<dyn UsageMeter>] {
        self.gated.as_ref().map_or(&[], |gated| &gated.meters)
    }

    /// Tells every meter that the call made with the credential used `usage`.
    pub fn report_usage(&self, usage: &Usage) {
        for meter in self.meters() {
            meter.record(usage);
        }
    }

    /// What gates said of this grant, in the order they said it.
    pub fn notes(&self) -> &[String] {
        self.gated.as_ref().map_or(&[], |gated| &gated.notes)
    }

    /// What gates keep for this resolution, to outlive it where the credential is used longer
    /// (a proxied answer still streaming).
    pub fn holds(&self) -> &[Arc<dyn std::any::Any + Send + Sync>] {
        &self.holds
    }
}

/// Why a request gets no credential.
///
/// `code()` is a stable machine-readable name; `Display` is one sentence for people. Neither
/// contains secret material.
///
/// ```
/// use identity_router::DenialReason;
/// assert_eq!(DenialReason::NoMatchingRule.code(), "no_matching_rule");
/// assert_eq!(DenialReason::NoMatchingRule.to_string(), "no rule matches this request");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "code",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum DenialReason {
    /// No rule matches the request.
    NoMatchingRule,
    /// The rule's store has no credential in the slot. The slot's name is kept for programs
    /// but never shown: in some data a ref is the live token itself.
    CredentialNotFound {
        /// The slot (not serialized, not displayed).
        #[serde(skip)]
        credential_ref: CredentialRef,
        /// The store's name in the router.
        store: String,
    },
    /// The credential exists but is not `active`.
    NotActive {
        /// The credential.
        credential_id: String,
        /// Its status.
        status: CredentialStatus,
    },
    /// The credential has expired (or expires within the router's clock skew).
    Expired {
        /// The credential.
        credential_id: String,
        /// When it expires.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// The rule is `readOnly` and the credential's scope can write.
    NotReadOnly {
        /// The credential.
        credential_id: String,
        /// The credential's scope.
        scope: String,
    },
    /// The rule's `credentialKind` differs from the credential's kind.
    KindMismatch {
        /// The credential.
        credential_id: String,
        /// The rule's kind.
        expected: CredentialKind,
        /// The credential's kind.
        actual: CredentialKind,
    },
    /// The store's backend refused to produce the credential for this caller: an authorization
    /// server's OAuth error (`invalid_grant`, `invalid_scope`, ...), no token of the caller's to
    /// exchange (`unauthenticated`), or a permission the store lacks (`permission_denied`).
    StoreRefused {
        /// The store's name in the router.
        store: String,
        /// The backend's code (an OAuth error code, `unauthenticated`, `permission_denied`).
        backend_code: String,
        /// What the store said (never a secret).
        detail: String,
    },
    /// The user must grant access first (connect the provider, again, or with more scopes).
    /// Handing the user a connect link for `provider` with `scopes` can fix it.
    ConsentRequired {
        /// The store's name in the router.
        store: String,
        /// The provider to connect.
        provider: String,
        /// The user who must grant it.
        user_id: String,
        /// Scopes to ask for beyond the provider's own; empty when those suffice.
        scopes: Vec<String>,
        /// Why, for people.
        detail: String,
    },
    /// A budget of the request's rule, credential, user or workload is spent for now.
    BudgetExhausted {
        /// The budget's id.
        budget: String,
        /// How long until a request fits in it again, in whole seconds (at least 1).
        retry_after_secs: u64,
    },
    /// The permission policies do not allow the call: a policy forbids it, none permits it
    /// where one must, or a policy could not be evaluated (they fail closed).
    NotPermitted {
        /// The policies that decided (empty when none applied, or on an error).
        policies: Vec<String>,
        /// Why, for people.
        detail: String,
    },
    /// The call needs approval first. Approvers can grant approval `approval_id`; the same call
    /// then passes once.
    ApprovalRequired {
        /// The pending approval.
        approval_id: String,
        /// What is to be approved, for people.
        summary: String,
        /// How many distinct approvers must approve.
        approvals_needed: u32,
        /// When the pending approval lapses.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// The store failed to answer.
    StoreUnavailable {
        /// The store's name in the router.
        store: String,
        /// What the store said (never a secret).
        detail: String,
        /// True when trying again may work.
        retryable: bool,
    },
}

impl DenialReason {
    /// A stable machine-readable name of the reason.
    ///
    /// ```
    /// use identity_router::DenialReason;
    /// let reason = DenialReason::StoreUnavailable { store: "vault".into(), detail: "down".into(), retryable: true };
    /// assert_eq!(reason.code(), "store_unavailable");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoMatchingRule => "no_matching_rule",
            Self::CredentialNotFound { .. } => "credential_not_found",
            Self::NotActive { .. } => "credential_not_active",
            Self::Expired { .. } => "credential_expired",
            Self::NotReadOnly { .. } => "credential_not_read_only",
            Self::KindMismatch { .. } => "credential_kind_mismatch",
            Self::StoreRefused { .. } => "store_refused",
            Self::ConsentRequired { .. } => "consent_required",
            Self::BudgetExhausted { .. } => "budget_exhausted",
            Self::NotPermitted { .. } => "not_permitted",
            Self::ApprovalRequired { .. } => "approval_required",
            Self::StoreUnavailable { .. } => "store_unavailable",
        }
    }

    /// True when the credential is unavailable rather than wrongly configured: the reasons a
    /// router with fall-through moves on to the next matching rule for. A kind mismatch or a
    /// writable credential under a `readOnly` rule is a configuration mistake and never falls
    /// through, so that it is seen rather than masked.
    ///
    /// ```
    /// use identity_router::DenialReason;
    /// assert!(!DenialReason::NoMatchingRule.is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::CredentialNotFound { .. }
                | Self::ConsentRequired { .. }
                | Self::NotActive { .. }
                | Self::Expired { .. }
                | Self::StoreUnavailable { .. }
        )
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMatchingRule => f.write_str("no rule matches this request"),
            Self::CredentialNotFound { store, .. } => {
                write!(f, "store `{store}` holds no credential for the rule")
            }
            Self::NotActive {
                credential_id,
                status,
            } => {
                write!(f, "credential `{credential_id}` is {status}, not active")
            }
            Self::Expired {
                credential_id,
                expires_at,
            } => write!(
                f,
                "credential `{credential_id}` expired at {}",
                format_rfc3339(*expires_at)
            ),
            Self::NotReadOnly {
                credential_id,
                scope,
            } => write!(
                f,
                "the rule requires a read-only credential and `{credential_id}` can write (scope `{scope}`)"
            ),
            Self::KindMismatch {
                credential_id,
                expected,
                actual,
            } => write!(
                f,
                "the rule expects a {expected} credential and `{credential_id}` is {actual}"
            ),
            Self::StoreRefused { store, detail, .. } => {
                write!(f, "store `{store}` refused: {detail}")
            }
            Self::StoreUnavailable { store, detail, .. } => {
                write!(f, "store `{store}` could not answer: {detail}")
            }
            Self::ConsentRequired {
                provider, detail, ..
            } => write!(
                f,
                "the user must grant access to {provider} first: {detail}"
            ),
            Self::BudgetExhausted {
                budget,
                retry_after_secs,
            } => write!(
                f,
                "budget `{budget}` is spent for now: try again in {retry_after_secs} s"
            ),
            // The detail names the policies that decided.
            Self::NotPermitted { detail, .. } => write!(f, "not permitted: {detail}"),
            Self::ApprovalRequired {
                approval_id,
                approvals_needed,
                ..
            } => write!(
                f,
                "the call needs {approvals_needed} approval(s) first: approval `{approval_id}` is pending"
            ),
        }
    }
}

/// A refused resolution: the reason, the rule that decided (if one matched), and the earlier
/// rules tried when the router falls through.
///
/// ```
/// use identity_router::{Denial, DenialReason};
/// let denial = Denial::no_matching_rule();
/// assert_eq!(denial.reason, DenialReason::NoMatchingRule);
/// assert_eq!(denial.to_string(), "no rule matches this request");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Denial {
    /// Why.
    pub reason: DenialReason,
    /// The rule whose credential was refused; `None` when no rule matched.
    pub rule_id: Option<Arc<str>>,
    /// Whether the credential refused was the rule's own or its canary's.
    #[serde(skip_serializing_if = "is_primary")]
    pub arm: Arm,
    /// Rules tried before this one, with their reasons (fall-through only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fell_through: Vec<(Arc<str>, DenialReason)>,
}

impl Denial {
    /// The denial when no rule matches.
    pub fn no_matching_rule() -> Self {
        Self {
            reason: DenialReason::NoMatchingRule,
            rule_id: None,
            arm: Arm::Primary,
            fell_through: Vec::new(),
        }
    }
}

fn is_primary(arm: &Arm) -> bool {
    *arm == Arm::Primary
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule_id {
            Some(rule) => write!(f, "rule `{rule}`: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// The two credentials of one migration step.
///
/// ```
/// fn earliest(pair: &identity_router::ResolvedPair) -> Option<identity_core::OffsetDateTime> {
///     pair.expires_at
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolvedPair {
    /// The migration.
    pub migration_id: String,
    /// The phase.
    pub phase: MigrationPhase,
    /// Whether this is a dry run.
    pub dry_run: bool,
    /// The source's credential (read).
    pub source: Resolution,
    /// The target's credential.
    pub target: Resolution,
    /// The earlier of the two expiries, compared as times.
    pub expires_at: Option<OffsetDateTime>,
}

/// A refused migration step: which side failed, and why (both when both failed).
///
/// ```
/// use identity_router::{Denial, PairDenial};
/// let d = PairDenial { source: None, target: Some(Denial::no_matching_rule()) };
/// assert_eq!(d.to_string(), "target: no rule matches this request");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub struct PairDenial {
    /// The source side's denial, if it was refused.
    pub source: Option<Denial>,
    /// The target side's denial, if it was refused.
    pub target: Option<Denial>,
}

impl fmt::Display for PairDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.target) {
            (Some(source), Some(target)) => write!(f, "source: {source}; target: {target}"),
            (Some(source), None) => write!(f, "source: {source}"),
            (None, Some(target)) => write!(f, "target: {target}"),
            (None, None) => f.write_str("refused"),
        }
    }
}

/// How one rule fared against a context, in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleVerdict {
    /// The rule.
    pub rule_id: Arc<str>,
    /// Its priority.
    pub priority: i64,
    /// True when every `match*` field holds.
    pub matched: bool,
    /// The fields that do not hold (empty when `matched`).
    pub mismatches: Vec<Mismatch>,
}

/// The outcome in an [`Explanation`]: like a resolution, without the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "outcome"
)]
#[non_exhaustive]
pub enum ExplainedOutcome {
    /// A credential was granted.
    Granted {
        /// The deciding rule.
        rule_id: Arc<str>,
        /// Whether the credential is the rule's own or its canary's.
        #[serde(skip_serializing_if = "is_primary")]
        arm: Arm,
        /// The credential.
        credential_id: String,
        /// `resolvedFor`.
        resolved_for: String,
        /// The credential's expiry.
        #[serde(with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
        /// What gates said of the grant (the policies that permitted it).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// The request was refused.
    Denied(Denial),
}

/// Why a context resolves as it does: every rule in priority order with why it matched or not,
/// and the outcome. It holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Explanation {
    /// Every rule, in the order the router considers them.
    pub rules: Vec<RuleVerdict>,
    /// What a resolution of the context gives.
    pub outcome: ExplainedOutcome,
}

impl Explanation {
    /// The rule that decided, if any: the granting rule, or the rule whose credential was
    /// refused.
    ///
    /// ```
    /// fn decider(e: &identity_router::Explanation) -> Option<&str> { e.decided_by() }
    /// ```
    pub fn decided_by(&self) -> Option<&str> {
        match &self.outcome {
            ExplainedOutcome::Granted { rule_id, .. } => Some(rule_id),
            ExplainedOutcome::Denied(denial) => denial.rule_id.as_deref(),
        }
    }
}
