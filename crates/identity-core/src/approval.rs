//! [`ApprovalRequirement`]: what a rule or a policy demands before a call may use its credential.

use serde::{Deserialize, Serialize};

/// How long a pending approval, or a granted one not yet used, stays good by default: five
/// minutes.
pub const DEFAULT_APPROVAL_TTL_SECS: u64 = 300;

/// A demand that a call be approved before its credential is used: by how many distinct
/// approvers, out of which named set, whether a break-glass pass may stand in, and for how long
/// an approval is good.
///
/// ```
/// use identity_core::ApprovalRequirement;
/// let demand: ApprovalRequirement = serde_json::from_str(
///     r#"{"approvers": ["alice", "bob", "carol"], "required": 2, "breakGlass": true}"#)?;
/// assert_eq!(demand.required, 2);
/// assert_eq!(demand.ttl_secs, 300);
/// assert!(demand.may_approve("bob"));
/// assert!(!demand.may_approve("mallory"));
/// assert!(ApprovalRequirement::default().may_approve("anyone"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ApprovalRequirement {
    /// Who may approve, by caller name; empty: any caller with the approver role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// How many distinct approvers must approve (the reference's `requiredApprovers`).
    #[serde(default = "one", alias = "requiredApprovers")]
    pub required: u32,
    /// Whether a break-glass pass, with a justification, may stand in for approval.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// How long a pending approval, or a granted one not yet used, stays good, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

fn one() -> u32 {
    1
}

fn default_ttl() -> u64 {
    DEFAULT_APPROVAL_TTL_SECS
}

impl Default for ApprovalRequirement {
    fn default() -> Self {
        Self {
            approvers: Vec::new(),
            required: 1,
            break_glass: false,
            ttl_secs: DEFAULT_APPROVAL_TTL_SECS,
        }
    }
}

impl ApprovalRequirement {
    /// A demand for `required` approvals out of `approvers` (any approver when empty).
    ///
    /// ```
    /// let demand = identity_core::ApprovalRequirement::new(2, ["a", "b", "c"]);
    /// assert_eq!(demand.approvers.len(), 3);
    /// ```
    pub fn new<I, S>(required: u32, approvers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            approvers: approvers.into_iter().map(Into::into).collect(),
            required,
            ..Self::default()
        }
    }

    /// The same demand, allowing a break-glass pass or not.
    #[must_use]
    pub fn with_break_glass(mut self, allowed: bool) -> Self {
        self.break_glass = allowed;
        self
    }

    /// The same demand, with approvals good for `secs` seconds.
    #[must_use]
    pub fn with_ttl_secs(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }

    /// Whether `approver` is one of the named approvers (anyone, when none is named).
    pub fn may_approve(&self, approver: &str) -> bool {
        self.approvers.is_empty() || self.approvers.iter().any(|name| name == approver)
    }

    /// The stricter of two demands: the larger count, break-glass only when both allow it, the
    /// shorter lifetime, and the approvers both accept.
    ///
    /// ```
    /// use identity_core::ApprovalRequirement;
    /// let rule = ApprovalRequirement::new(1, ["alice", "bob"]).with_break_glass(true);
    /// let policy = ApprovalRequirement::new(2, ["bob", "carol"]);
    /// let both = rule.stricter(&policy);
    /// assert_eq!((both.required, both.break_glass), (2, false));
    /// assert_eq!(both.approvers, ["bob"]);
    /// ```
    #[must_use]
    pub fn stricter(&self, other: &Self) -> Self {
        let approvers = match (self.approvers.is_empty(), other.approvers.is_empty()) {
            (true, _) => other.approvers.clone(),
            (_, true) => self.approvers.clone(),
            _ => self
                .approvers
                .iter()
                .filter(|name| other.approvers.contains(name))
                .cloned()
                .collect(),
        };
        Self {
            approvers,
            required: self.required.max(other.required),
            break_glass: self.break_glass && other.break_glass,
            ttl_secs: self.ttl_secs.min(other.ttl_secs),
        }
    }

    /// What is wrong with the demand, if anything: no approval can be counted, more approvers
    /// are required than are named, or a zero lifetime.
    ///
    /// ```
    /// let demand = identity_core::ApprovalRequirement::new(3, ["a", "b"]);
    /// assert!(demand.problem().unwrap().contains("3 approvers"));
    /// ```
    pub fn problem(&self) -> Option<String> {
        if self.required == 0 {
            return Some("`required` must be at least 1".into());
        }
        if !self.approvers.is_empty() && (self.approvers.len() as u64) < u64::from(self.required) {
            return Some(format!(
                "{} approvers are required and only {} are named",
                self.required,
                self.approvers.len()
            ));
        }
        if self.ttl_secs == 0 {
            return Some("`ttlSecs` must be at least 1".into());
        }
        None
    }
}
