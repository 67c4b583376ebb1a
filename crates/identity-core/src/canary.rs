//! A rule's canary: a second credential that a steady share of users (or workloads) get instead
//! of the rule's own.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A share of traffic, in percent (0 to 100, fractions allowed), kept exactly in parts per
/// million so that a rule compares and hashes as written.
///
/// ```
/// use identity_core::CanaryWeight;
/// let weight: CanaryWeight = serde_json::from_str("12.5").unwrap();
/// assert_eq!(weight.parts_per_million(), 125_000);
/// assert_eq!(serde_json::to_string(&weight).unwrap(), "12.5");
/// assert!(serde_json::from_str::<CanaryWeight>("101").is_err());
/// assert!(serde_json::from_str::<CanaryWeight>("-1").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CanaryWeight(u32);

impl CanaryWeight {
    /// The whole of the traffic.
    pub const MAX_PARTS_PER_MILLION: u32 = 1_000_000;

    /// `percent` of the traffic (0 to 100; finer than a ten-thousandth of a percent is rounded).
    ///
    /// ```
    /// assert_eq!(identity_core::CanaryWeight::percent(10.0).unwrap().parts_per_million(), 100_000);
    /// assert!(identity_core::CanaryWeight::percent(f64::NAN).is_err());
    /// ```
    pub fn percent(percent: f64) -> Result<Self, String> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(format!("must be a percentage from 0 to 100, not {percent}"));
        }
        // In range, so the product is at most 1e6 and the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let parts = (percent * 10_000.0).round() as u32;
        Ok(Self(parts))
    }

    /// The share in parts per million.
    pub fn parts_per_million(self) -> u32 {
        self.0
    }

    /// The share in percent.
    ///
    /// ```
    /// assert_eq!(identity_core::CanaryWeight::percent(0.5).unwrap().as_percent(), 0.5);
    /// ```
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

impl fmt::Display for CanaryWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.as_percent())
    }
}

impl Serialize for CanaryWeight {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_percent())
    }
}

impl<'de> Deserialize<'de> for CanaryWeight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::percent(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// What keeps a caller on one arm of a canary: the same key always lands on the same arm.
///
/// ```
/// use identity_core::StickTo;
/// assert_eq!(serde_json::from_str::<StickTo>(r#""workload""#).unwrap(), StickTo::Workload);
/// assert_eq!(StickTo::default(), StickTo::User);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StickTo {
    /// The request's `userId`.
    #[default]
    User,
    /// The request's workload (`spiffeId`); a request without one sticks by its user.
    Workload,
}

/// A rule's canary: `weight` percent of users (or workloads) get the credential in
/// `credentialRef` instead of the rule's own, always the same ones.
///
/// When the canary credential is missing or refused (not found, not active, expired, its store
/// down), the rule refuses, unless `fallBack` is set: then the caller gets the rule's own
/// credential, and the resolution notes why.
///
/// ```
/// use identity_core::{Canary, RoutingRule};
/// let rule: RoutingRule = serde_json::from_str(r#"{"id":"llm","credentialRef":"openai-v1","priority":1,
///     "canary":{"credentialRef":"openai-v2","weight":10,"fallBack":true}}"#).unwrap();
/// let canary = rule.canary.unwrap();
/// assert_eq!(canary.weight.as_percent(), 10.0);
/// assert!(canary.fall_back);
/// assert!(serde_json::from_str::<Canary>(r#"{"credentialRef":"x","weight":10,"fallback":true}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Canary {
    /// The canary credential's slot.
    pub credential_ref: String,
    /// The share of users (or workloads) that get it, in percent.
    pub weight: CanaryWeight,
    /// The store to ask; the rule's own store when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// What keeps a caller on one arm.
    #[serde(default)]
    pub stick_to: StickTo,
    /// Whether a missing or refused canary credential gives way to the rule's own.
    #[serde(default)]
    pub fall_back: bool,
}

impl Canary {
    /// A canary of `weight` percent on the credential in `credential_ref`, sticking by user,
    /// without fall-back.
    ///
    /// ```
    /// let canary = identity_core::Canary::new("openai-v2", identity_core::CanaryWeight::percent(5.0)?);
    /// assert!(!canary.fall_back);
    /// # Ok::<(), String>(())
    /// ```
    pub fn new(credential_ref: impl Into<String>, weight: CanaryWeight) -> Self {
        Self {
            credential_ref: credential_ref.into(),
            weight,
            store: None,
            stick_to: StickTo::User,
            fall_back: false,
        }
    }

    /// The canary, falling back to the rule's credential or not.
    ///
    /// ```
    /// # let weight = identity_core::CanaryWeight::percent(5.0)?;
    /// assert!(identity_core::Canary::new("v2", weight).with_fall_back(true).fall_back);
    /// # Ok::<(), String>(())
    /// ```
    pub fn with_fall_back(mut self, fall_back: bool) -> Self {
        self.fall_back = fall_back;
        self
    }

    /// The canary, sticking by `stick_to`.
    ///
    /// ```
    /// # let weight = identity_core::CanaryWeight::percent(5.0)?;
    /// use identity_core::{Canary, StickTo};
    /// assert_eq!(Canary::new("v2", weight).with_stick_to(StickTo::Workload).stick_to, StickTo::Workload);
    /// # Ok::<(), String>(())
    /// ```
    pub fn with_stick_to(mut self, stick_to: StickTo) -> Self {
        self.stick_to = stick_to;
        self
    }

    /// The canary, asking the store named `store`.
    ///
    /// ```
    /// # let weight = identity_core::CanaryWeight::percent(5.0)?;
    /// assert_eq!(identity_core::Canary::new("v2", weight).with_store("vault").store.as_deref(), Some("vault"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn with_store(mut self, store: impl Into<String>) -> Self {
        self.store = Some(store.into());
        self
    }
}
