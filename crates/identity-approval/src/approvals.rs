//! [`Approvals`]: holds calls that need approval, lets approvers decide them, and lets the
//! approved call through once (the router [`Gate`]).

use std::fmt;
use std::sync::Arc;

use identity_core::{Error, OffsetDateTime};
use identity_router::{Admission, DenialReason, Gate, Resolution};
use tracing::{info, warn};

use crate::record::{Approval, ApprovalState, CallSummary, Vote};
use crate::signing::ApprovalSigner;
use crate::store::{ApprovalStore, Versioned};

/// How many times a decision is tried again when another replica changed the approval first.
const ROUNDS: usize = 5;

/// Told of approvals as they happen (a webhook to a chat tool).
pub trait ApprovalNotifier: Send + Sync + fmt::Debug + 'static {
    /// A call is held, waiting for approvers.
    fn pending(&self, approval: &Approval);
    /// A call was passed by break-glass.
    fn break_glass(&self, approval: &Approval);
}

/// Why a decision on an approval was refused.
///
/// ```
/// let err = identity_approval::ApprovalError::NotFound("a1".into());
/// assert_eq!(err.code(), "approval_not_found");
/// assert_eq!(err.to_string(), "there is no approval `a1`");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No such approval.
    #[error("there is no approval `{0}`")]
    NotFound(String),
    /// It is decided already, or used.
    #[error("approval `{id}` is {state:?}, not pending")]
    NotPending {
        /// The approval.
        id: String,
        /// Where it stands.
        state: ApprovalState,
    },
    /// It lapsed.
    #[error("approval `{0}` has expired")]
    Expired(String),
    /// The caller that asked for it tried to approve it.
    #[error("`{0}` asked for this approval and cannot give it")]
    SelfApproval(String),
    /// The approver is not among the named approvers.
    #[error("`{0}` is not one of this approval's approvers")]
    NotAnApprover(String),
    /// The approver approved it already.
    #[error("`{0}` has approved it already; another approver must")]
    AlreadyApproved(String),
    /// Break-glass is not allowed for this call.
    #[error("break-glass is not allowed for this call")]
    BreakGlassNotAllowed,
    /// Break-glass needs a justification.
    #[error("break-glass needs a justification")]
    JustificationRequired,
    /// The store failed, or kept changing.
    #[error(transparent)]
    Store(#[from] Error),
}

impl ApprovalError {
    /// A stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "approval_not_found",
            Self::NotPending { .. } => "approval_not_pending",
            Self::Expired(_) => "approval_expired",
            Self::SelfApproval(_) => "self_approval",
            Self::NotAnApprover(_) => "not_an_approver",
            Self::AlreadyApproved(_) => "already_approved",
            Self::BreakGlassNotAllowed => "break_glass_not_allowed",
            Self::JustificationRequired => "justification_required",
            Self::Store(_) => "store_unavailable",
        }
    }
}

/// Approvals of calls: a router [`Gate`] that holds each call whose rule or policy demands
/// approval ([`Resolution::approval_demanded`]) until approvers approve that exact call, then
/// lets it through once.
///
/// A held call is refused with `approval_required` and the approval's id. The approval is bound
/// to the digest of the call ([`CallSummary::digest`]): user, workload, credential, rule and,
/// for a proxied call, upstream, method, path, query and the SHA-256 of the body. Approvers
/// approve or reject it by id; the caller that asked cannot approve it; when the demand names
/// approvers only they count, and it takes as many distinct approvers as it requires. A granted
/// approval is signed ([`ApprovalSigner`]), good until it lapses, and used once: the store's
/// check-and-set sees to it across replicas.
///
/// ```
/// # use std::sync::Arc;
/// use identity_approval::{ApprovalSigner, Approvals, MemoryApprovals};
/// let approvals = Approvals::new(Arc::new(MemoryApprovals::default()), ApprovalSigner::generate("k1")?);
/// let router = identity_router::Router::builder()
///     .default_store(identity_memory::MemoryCredentialStore::new())
///     .gate(approvals.clone()).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ApprovalStore>,
    signer: ApprovalSigner,
    notifier: Option<Arc<dyn ApprovalNotifier>>,
    clock: fn() -> OffsetDateTime,
}

impl Approvals {
    /// Approvals kept in `store`, signed by `signer`.
    pub fn new(store: Arc<dyn ApprovalStore>, signer: ApprovalSigner) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                signer,
                notifier: None,
                clock: OffsetDateTime::now_utc,
            }),
        }
    }

    /// The same approvals, telling `notifier` of pending calls and break-glass passes.
    #[must_use]
    pub fn with_notifier(self, notifier: Arc<dyn ApprovalNotifier>) -> Self {
        self.rebuild(|inner| inner.notifier = Some(notifier))
    }

    /// The same approvals, reading the time from `clock`.
    #[must_use]
    pub fn with_clock(self, clock: fn() -> OffsetDateTime) -> Self {
        self.rebuild(|inner| inner.clock = clock)
    }

    fn rebuild(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            store: self.inner.store.clone(),
            signer: self.inner.signer.clone(),
            notifier: self.inner.notifier.clone(),
            clock: self.inner.clock,
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The signer, whose verifier checks the statements.
    pub fn signer(&self) -> &ApprovalSigner {
        &self.inner.signer
    }

    /// Every approval kept, newest first.
    pub async fn list(&self) -> Result<Vec<Approval>, ApprovalError> {
        Ok(self.inner.store.list().await?)
    }

    /// The approval `id`.
    pub async fn get(&self, id: &str) -> Result<Approval, ApprovalError> {
        self.inner
            .store
            .get(id)
            .await?
            .map(|held| held.approval)
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))
    }

    /// `approver` approves `id`. The approval is granted (and signed) when enough distinct
    /// approvers have approved it.
    pub async fn approve(&self, id: &str, approver: &str) -> Result<Approval, ApprovalError> {
        self.decide(id, |approval, now| {
            if approval.requester.as_deref() == Some(approver) {
                return Err(ApprovalError::SelfApproval(approver.to_owned()));
            }
            if !approval.demand.may_approve(approver) {
                return Err(ApprovalError::NotAnApprover(approver.to_owned()));
            }
            if approval.approvals.iter().any(|vote| vote.by == approver) {
                return Err(ApprovalError::AlreadyApproved(approver.to_owned()));
            }
            approval.approvals.push(Vote {
                by: approver.to_owned(),
                at: now,
                note: None,
            });
            Ok(approval.approvals_missing() == 0)
        })
        .await
    }

    /// `approver` rejects `id`: the call stays refused until the approval lapses.
    pub async fn reject(
        &self,
        id: &str,
        approver: &str,
        reason: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        let approval = self
            .decide(id, |approval, now| {
                if !approval.demand.may_approve(approver) {
                    return Err(ApprovalError::NotAnApprover(approver.to_owned()));
                }
                approval.state = ApprovalState::Rejected;
                approval.rejection = Some(Vote {
                    by: approver.to_owned(),
                    at: now,
                    note: reason.clone(),
                });
                Ok(false)
            })
            .await?;
        info!(target: "agent_identity::audit", approval = %approval.id, by = approver, "approval rejected");
        Ok(approval)
    }

    /// `by` passes `id` by break-glass, for `justification`: allowed only where the demand
    /// allows it, audited loudly and notified at once.
    pub async fn break_glass(
        &self,
        id: &str,
        by: &str,
        justification: &str,
    ) -> Result<Approval, ApprovalError> {
        let justification = justification.trim();
        if justification.is_empty() {
            return Err(ApprovalError::JustificationRequired);
        }
        let approval = self
            .decide(id, |approval, now| {
                if !approval.demand.break_glass {
                    return Err(ApprovalError::BreakGlassNotAllowed);
                }
                approval.break_glass = Some(Vote {
                    by: by.to_owned(),
                    at: now,
                    note: Some(justification.to_owned()),
                });
                Ok(true)
            })
            .await?;
        warn!(
            target: "agent_identity::audit",
            approval = %approval.id,
            by,
            justification,
            call = %approval.call.describe(),
            "BREAK-GLASS: a call passed without approval"
        );
        if let Some(notifier) = &self.inner.notifier {
            notifier.break_glass(&approval);
        }
        Ok(approval)
    }

    /// Changes pending approval `id` with `change`, which says whether it is now granted;
    /// again from a fresh read when another writer came first.
    async fn decide(
        &self,
        id: &str,
        change: impl Fn(&mut Approval, OffsetDateTime) -> Result<bool, ApprovalError>,
    ) -> Result<Approval, ApprovalError> {
        for _ in 0..ROUNDS {
            let now = (self.inner.clock)();
            let Versioned {
                mut approval,
                version,
            } = self
                .inner
                .store
                .get(id)
                .await?
                .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
            if approval.state != ApprovalState::Pending {
                return Err(ApprovalError::NotPending {
                    id: id.to_owned(),
                    state: approval.state,
                });
            }
            if now >= approval.expires_at {
                return Err(ApprovalError::Expired(id.to_owned()));
            }
            if change(&mut approval, now)? {
                approval.state = ApprovalState::Granted;
                let ttl = time::Duration::seconds(
                    i64::try_from(approval.demand.ttl_secs).unwrap_or(i64::MAX),
                );
                approval.expires_at = now.saturating_add(ttl);
                approval.statement = Some(self.inner.signer.sign(&approval, now)?);
            }
            if self.inner.store.replace(&approval, version).await? {
                if approval.state == ApprovalState::Granted {
                    info!(target: "agent_identity::audit", approval = %approval.id,
                        call = %approval.call.describe(), "approval granted");
                }
                return Ok(approval);
            }
        }
        Err(ApprovalError::Store(Error::unavailable(
            "approvals",
            "the approval kept changing; try again",
        )))
    }

    /// Uses the granted approval of `digest` if there is one: `Some` with it when this call
    /// took it (no other can), `None` when there is none to use.
    async fn use_granted(
        &self,
        digest: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Approval>, Error> {
        for _ in 0..ROUNDS {
            let Some(Versioned {
                mut approval,
                version,
            }) = self.inner.store.for_call(digest).await?
            else {
                return Ok(None);
            };
            if approval.state != ApprovalState::Granted || now >= approval.expires_at {
                return Ok(None);
            }
            // What the shared store says was granted must carry this key's signature, for this
            // very call: a record written past the approvers does not pass.
            let signed = approval
                .statement
                .as_deref()
                .and_then(|jws| self.inner.signer.verifier().verify(jws).ok())
                .is_some_and(|statement| statement.call == digest && statement.jti == approval.id);
            if !signed {
                warn!(target: "agent_identity::audit", approval = %approval.id,
                    "a granted approval without a valid signature was refused");
                return Ok(None);
            }
            approval.state = ApprovalState::Used;
            if self.inner.store.replace(&approval, version).await? {
                return Ok(Some(approval));
            }
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl Gate for Approvals {
    async fn admit(
        &self,
        admission: &Admission<'_>,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason> {
        let Some(demand) = resolution.approval_demanded().cloned() else {
            return Ok(());
        };
        let unavailable = |err: Error| DenialReason::StoreUnavailable {
            store: "approvals".into(),
            detail: err.to_string(),
            retryable: true,
        };
        let Some(call) = CallSummary::of(admission, resolution) else {
            return Err(DenialReason::NotPermitted {
                policies: Vec::new(),
                detail: "the call needs approval, which binds to its body: send the body whole, \
                         with a Content-Length"
                    .into(),
            });
        };
        let now = (self.inner.clock)();
        let digest = call.digest();
        if let Some(used) = self.use_granted(&digest, now).await.map_err(unavailable)? {
            let by: Vec<&str> = used
                .approvals
                .iter()
                .chain(&used.break_glass)
                .map(|vote| vote.by.as_str())
                .collect();
            info!(target: "agent_identity::audit", approval = %used.id, call = %call.describe(),
                "approved call let through");
            resolution.note(format!(
                "approved by `{}` (approval `{}`)",
                by.join("`, `"),
                used.id
            ));
            resolution.settle_approval();
            return Ok(());
        }
        let requester = admission.intent.requester.clone();
        let fresh = Approval::pending(call, requester, demand, now);
        let held = self
            .inner
            .store
            .create(&fresh, now)
            .await
            .map_err(unavailable)?
            .approval;
        match held.state {
            ApprovalState::Rejected => {
                let by = held
                    .rejection
                    .as_ref()
                    .map_or("an approver", |v| v.by.as_str());
                let why = held
                    .rejection
                    .as_ref()
                    .and_then(|v| v.note.as_deref())
                    .map_or(String::new(), |note| format!(": {note}"));
                Err(DenialReason::NotPermitted {
                    policies: Vec::new(),
                    detail: format!("approval `{}` was rejected by `{by}`{why}", held.id),
                })
            }
            _ => {
                if held.id == fresh.id {
                    info!(target: "agent_identity::audit", approval = %held.id,
                        call = %held.call.describe(), "call held for approval");
                    if let Some(notifier) = &self.inner.notifier {
                        notifier.pending(&held);
                    }
                }
                Err(DenialReason::ApprovalRequired {
                    approval_id: held.id.clone(),
                    summary: held.call.describe(),
                    approvals_needed: held.approvals_missing().max(1),
                    expires_at: held.expires_at,
                })
            }
        }
    }
}
