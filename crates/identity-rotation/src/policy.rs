//! When a credential rotates, and who is told.

use std::fmt;
use std::time::Duration;

use identity_core::{ConfigError, OffsetDateTime};

/// When a credential is due for rotation, and how long its previous version stays valid.
///
/// ```
/// use std::time::Duration;
/// use identity_rotation::RotationPolicy;
/// let policy = RotationPolicy::after_days(30)
///     .with_uses(10_000)
///     .with_grace(Duration::from_secs(3600))
///     .with_notice(Duration::from_secs(86_400));
/// assert!(policy.check().is_ok());
/// assert!(RotationPolicy::after_uses(0).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationPolicy {
    /// Rotate once the credential is this old (since its last rotation, or since the store
    /// first saw it).
    pub after: Option<Duration>,
    /// Rotate once it has been resolved this many times.
    pub after_uses: Option<u64>,
    /// How long the previous version stays valid after a rotation.
    pub grace: Duration,
    /// How long before a rotation by age is due that the observer is told (once per version).
    pub notice: Option<Duration>,
}

impl RotationPolicy {
    /// Rotate every `days` days; an hour of grace.
    pub fn after_days(days: u32) -> Self {
        Self::after(Duration::from_secs(u64::from(days) * 86_400))
    }

    /// Rotate once the credential is `age` old; an hour of grace.
    pub fn after(age: Duration) -> Self {
        Self {
            after: Some(age),
            after_uses: None,
            grace: Duration::from_secs(3600),
            notice: None,
        }
    }

    /// Rotate after `uses` resolutions; an hour of grace.
    pub fn after_uses(uses: u64) -> Self {
        Self {
            after: None,
            after_uses: Some(uses),
            grace: Duration::from_secs(3600),
            notice: None,
        }
    }

    /// Also rotate after `uses` resolutions, whichever comes first.
    pub fn with_uses(mut self, uses: u64) -> Self {
        self.after_uses = Some(uses);
        self
    }

    /// The previous version stays valid for `grace`.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The observer is told `notice` before a rotation by age is due.
    pub fn with_notice(mut self, notice: Duration) -> Self {
        self.notice = Some(notice);
        self
    }

    /// Whether the policy can be used: a trigger, none of them zero.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problem =
            |field: &str, text: &str| Err(ConfigError::new("rotation", Some(field), text));
        match (self.after, self.after_uses) {
            (None, None) => problem(
                "after",
                "names no trigger: give an age, a number of uses, or both",
            ),
            (Some(age), _) if age.is_zero() => problem("after", "is zero"),
            (_, Some(0)) => problem("after_uses", "is zero"),
            _ => Ok(()),
        }
    }
}

/// What a [`RotationObserver`] is told. Never a secret.
///
/// ```
/// use identity_rotation::RotationNotice;
/// let notice = RotationNotice::Retired { reference: "webhook".into(), credential_id: "webhook-v1".into() };
/// assert!(notice.to_string().contains("webhook-v1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationNotice {
    /// A rotation by age falls due at `due_at`.
    DueSoon {
        /// The slot.
        reference: String,
        /// The version in use.
        credential_id: String,
        /// When it is due.
        due_at: OffsetDateTime,
    },
    /// A new version replaced `from`; `from` is valid until `grace_until`.
    Rotated {
        /// The slot.
        reference: String,
        /// The version replaced.
        from: String,
        /// The new version.
        to: String,
        /// The end of the previous version's grace window.
        grace_until: OffsetDateTime,
    },
    /// The previous version's grace window is over: it was retired.
    Retired {
        /// The slot.
        reference: String,
        /// The version retired.
        credential_id: String,
    },
}

impl fmt::Display for RotationNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DueSoon {
                reference,
                credential_id,
                due_at,
            } => write!(
                f,
                "`{reference}` ({credential_id}) is due for rotation at {due_at}"
            ),
            Self::Rotated {
                reference,
                from,
                to,
                grace_until,
            } => write!(
                f,
                "`{reference}` rotated from {from} to {to}; {from} is valid until {grace_until}"
            ),
            Self::Retired {
                reference,
                credential_id,
            } => write!(f, "`{reference}`: {credential_id} retired"),
        }
    }
}

/// Told of rotations: before one is due, when one is made, when a previous version is retired.
/// It runs inline: quick, not blocking (hand the notice to a channel to send it further).
///
/// ```
/// #[derive(Debug)]
/// struct Log;
/// impl identity_rotation::RotationObserver for Log {
///     fn notify(&self, notice: &identity_rotation::RotationNotice) { tracing::warn!(%notice); }
/// }
/// ```
pub trait RotationObserver: Send + Sync + fmt::Debug + 'static {
    /// Called once per event.
    fn notify(&self, notice: &RotationNotice);
}
