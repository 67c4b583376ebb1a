//! [`Approval`]: one held call, what it would do, and who decided it.

use identity_core::{ApprovalRequirement, OffsetDateTime};
use identity_router::{Admission, Purpose, Resolution};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a held call would do: the request it belongs to and, for a proxied call, the call
/// itself. An approval is bound to its [`CallSummary::digest`]: a call that differs in any of
/// these needs an approval of its own.
///
/// ```
/// use identity_approval::CallSummary;
/// let mut call = CallSummary::for_test("alice", "payments", "POST", "/transfers", b"{\"amount\":10}");
/// let digest = call.digest();
/// call.body_sha256 = Some(hex::encode([0u8; 32]));
/// assert_ne!(call.digest(), digest);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CallSummary {
    /// The user the agent acts for.
    pub user_id: String,
    /// The calling workload's SPIFFE ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// What the credential is for: `resolve`, `deliver` or `proxy`.
    pub action: String,
    /// The rule that granted the credential.
    pub rule_id: String,
    /// The credential.
    pub credential_id: String,
    /// The request's provider.
    pub provider: String,
    /// The request's resource.
    pub resource_id: String,
    /// The upstream of a proxied call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Its method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The SHA-256 of its body, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
}

impl CallSummary {
    /// The call a gate admits: `None` when it is a proxied call whose body was not read whole
    /// (an approval cannot be bound to what it has not seen).
    pub fn of(admission: &Admission<'_>, resolution: &Resolution) -> Option<Self> {
        let context = admission.context;
        let purpose = &admission.intent.purpose;
        let mut summary = Self {
            user_id: context.user_id.clone(),
            workload: context.spiffe_id.clone(),
            action: purpose.action().to_owned(),
            rule_id: resolution.rule_id.to_string(),
            credential_id: resolution.credential_id.clone(),
            provider: context.provider.clone(),
            resource_id: context.resource_id.clone(),
            upstream: None,
            method: None,
            path: None,
            query: None,
            body_sha256: None,
        };
        if let Purpose::Proxy(call) = purpose {
            summary.upstream = Some(call.upstream.clone());
            summary.method = Some(call.method.clone());
            summary.path = Some(call.path.clone());
            summary.query = call.query.clone();
            summary.body_sha256 = Some(hex::encode(call.body_sha256?));
        }
        Some(summary)
    }

    /// A proxied call, for examples and tests.
    pub fn for_test(user: &str, upstream: &str, method: &str, path: &str, body: &[u8]) -> Self {
        Self {
            user_id: user.into(),
            workload: None,
            action: "proxy".into(),
            rule_id: "rule".into(),
            credential_id: "credential".into(),
            provider: upstream.into(),
            resource_id: "resource".into(),
            upstream: Some(upstream.into()),
            method: Some(method.into()),
            path: Some(path.into()),
            query: None,
            body_sha256: Some(hex::encode(Sha256::digest(body))),
        }
    }

    /// The SHA-256, in hex, of every field: what an approval is bound to.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        // Each field is length-prefixed, and absence differs from emptiness: no two calls
        // share a digest by moving text between fields.
        let fields: [Option<&str>; 12] = [
            Some(&self.user_id),
            self.workload.as_deref(),
            Some(&self.action),
            Some(&self.rule_id),
            Some(&self.credential_id),
            Some(&self.provider),
            Some(&self.resource_id),
            self.upstream.as_deref(),
            self.method.as_deref(),
            self.path.as_deref(),
            self.query.as_deref(),
            self.body_sha256.as_deref(),
        ];
        for field in fields {
            match field {
                Some(text) => {
                    hasher.update([1]);
                    hasher.update((text.len() as u64).to_be_bytes());
                    hasher.update(text.as_bytes());
                }
                None => hasher.update([0]),
            }
        }
        hex::encode(hasher.finalize())
    }

    /// One line for people: `POST payments/transfers for alice (rule pay)`.
    ///
    /// ```
    /// let call = identity_approval::CallSummary::for_test("alice", "payments", "POST", "/transfers", b"");
    /// assert_eq!(call.describe(), "POST payments/transfers for alice with credential `credential` (rule `rule`)");
    /// ```
    pub fn describe(&self) -> String {
        let what = match (&self.upstream, &self.method, &self.path) {
            (Some(upstream), Some(method), Some(path)) => {
                let query = self
                    .query
                    .as_deref()
                    .map_or(String::new(), |q| format!("?{q}"));
                format!("{method} {upstream}{path}{query}")
            }
            _ => self.action.clone(),
        };
        format!(
            "{what} for {} with credential `{}` (rule `{}`)",
            self.user_id, self.credential_id, self.rule_id
        )
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApprovalState {
    /// Waiting for approvers.
    Pending,
    /// Approved (or passed by break-glass), not yet used.
    Granted,
    /// Used by the call it approved: done.
    Used,
    /// Rejected by an approver.
    Rejected,
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Vote {
    /// Who.
    pub by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What they said (a rejection's reason, a break-glass justification).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One held call and its approvals.
///
/// ```
/// use identity_approval::{Approval, ApprovalState, CallSummary};
/// let now = identity_core::OffsetDateTime::now_utc();
/// let approval = Approval::pending(CallSummary::for_test("alice", "payments", "POST", "/t", b""),
///     Some("agent".into()), Default::default(), now);
/// assert_eq!(approval.state, ApprovalState::Pending);
/// assert!(approval.is_live(now));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Approval {
    /// Its id.
    pub id: String,
    /// The digest of the call it is bound to.
    pub call_digest: String,
    /// The call.
    pub call: CallSummary,
    /// The caller that asked (it cannot approve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// What is demanded.
    pub demand: ApprovalRequirement,
    /// Where it stands.
    pub state: ApprovalState,
    /// The approvals given so far.
    #[serde(default)]
    pub approvals: Vec<Vote>,
    /// The rejection, if rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Vote>,
    /// The break-glass pass, if one stood in for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<Vote>,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it lapses: pending, or granted and unused.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When granted: the signed statement of who approved what (a compact JWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
}

impl Approval {
    /// A new pending approval of `call`, asked by `requester` at `now`.
    pub fn pending(
        call: CallSummary,
        requester: Option<String>,
        demand: ApprovalRequirement,
        now: OffsetDateTime,
    ) -> Self {
        let ttl = time::Duration::seconds(i64::try_from(demand.ttl_secs).unwrap_or(i64::MAX));
        Self {
            id: new_id(),
            call_digest: call.digest(),
            call,
            requester,
            demand,
            state: ApprovalState::Pending,
            approvals: Vec::new(),
            rejection: None,
            break_glass: None,
            created_at: now,
            expires_at: now.saturating_add(ttl),
            statement: None,
        }
    }

    /// Whether it still stands for its call at `now`: pending, granted or rejected, and not
    /// lapsed.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.state != ApprovalState::Used && now < self.expires_at
    }

    /// How many approvals are still needed.
    pub fn approvals_missing(&self) -> u32 {
        self.demand
            .required
            .saturating_sub(u32::try_from(self.approvals.len()).unwrap_or(u32::MAX))
    }
}

/// A random id: 128 bits in hex.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // The system's random source failing is not a state to run in: the id would repeat.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        bytes = nanos.to_be_bytes();
    }
    hex::encode(bytes)
}
