//! Credentials: what a store holds and a rule names.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::delivery::Delivery;
use crate::error::{ConfigError, Error};
use crate::secret::Secret;
use crate::timestamp::{format_rfc3339, parse_rfc3339};

/// Whom a credential acts for.
///
/// ```
/// use identity_core::CredentialKind;
///
/// let kind: CredentialKind = "user-delegated".parse().unwrap();
/// assert_eq!(kind, CredentialKind::UserDelegated);
/// assert_eq!(CredentialKind::Fixed.to_string(), "fixed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// A service credential, the same for every user (`resolvedFor` is `"service"`).
    Fixed,
    /// A credential that acts for one user (`resolvedFor` is that user).
    UserDelegated,
}

impl CredentialKind {
    /// The wire spelling: `fixed` or `user-delegated`.
    ///
    /// ```
    /// assert_eq!(identity_core::CredentialKind::UserDelegated.as_str(), "user-delegated");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fixed => "fixed",
            Self::UserDelegated => "user-delegated",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CredentialKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fixed" => Ok(Self::Fixed),
            "user-delegated" => Ok(Self::UserDelegated),
            _ => Err(Error::InvalidArgument {
                argument: "credential kind",
                problem: "must be `fixed` or `user-delegated`".into(),
            }),
        }
    }
}

/// The lifecycle state of a credential. Only `active` credentials are ever handed out.
///
/// ```
/// use identity_core::CredentialStatus;
///
/// assert!(CredentialStatus::Active.is_usable());
/// assert!(!CredentialStatus::Unclaimed.is_usable());
/// assert_eq!("revoked".parse::<CredentialStatus>().unwrap(), CredentialStatus::Revoked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialStatus {
    /// In use.
    Active,
    /// Provisioned but not yet usable.
    Pending,
    /// Issued to an anonymous flow that has not been claimed by a user yet.
    Unclaimed,
    /// Withdrawn.
    Revoked,
}

impl CredentialStatus {
    /// The wire spelling (`active`, `pending`, `unclaimed`, `revoked`).
    ///
    /// ```
    /// assert_eq!(identity_core::CredentialStatus::Pending.as_str(), "pending");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Unclaimed => "unclaimed",
            Self::Revoked => "revoked",
        }
    }

    /// True only for [`CredentialStatus::Active`].
    ///
    /// ```
    /// assert!(!identity_core::CredentialStatus::Pending.is_usable());
    /// ```
    pub const fn is_usable(self) -> bool {
        matches!(self, Self::Active)
    }
}

impl fmt::Display for CredentialStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CredentialStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "pending" => Ok(Self::Pending),
            "unclaimed" => Ok(Self::Unclaimed),
            "revoked" => Ok(Self::Revoked),
            _ => Err(Error::InvalidArgument {
                argument: "credential status",
                problem: "must be one of `active`, `pending`, `unclaimed`, `revoked`".into(),
            }),
        }
    }
}

/// The name of a credential slot: what a rule's `credentialRef` names and a store looks up.
///
/// A ref is a name, never the secret. It is non-empty, at most 512 bytes, and has no control
/// characters; backends may refuse more (a Vault path segment may not be `..`). Cloning is cheap.
///
/// ```
/// use identity_core::CredentialRef;
///
/// let r = CredentialRef::new("openai-prod").unwrap();
/// assert_eq!(r.as_str(), "openai-prod");
/// assert!(CredentialRef::new("").is_err());
/// assert!(CredentialRef::new("a\nb").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialRef(Arc<str>);

impl CredentialRef {
    /// The longest ref accepted, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Validates and wraps a ref.
    ///
    /// ```
    /// assert!(identity_core::CredentialRef::new("vault:openai/user-alice-slot").is_ok());
    /// ```
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        let problem = if value.is_empty() {
            Some("is empty")
        } else if value.len() > Self::MAX_LEN {
            Some("is longer than 512 bytes")
        } else if value.chars().any(char::is_control) {
            Some("contains a control character")
        } else if value.trim() != value {
            Some("starts or ends with white space")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::InvalidArgument {
                argument: "credential ref",
                problem: problem.into(),
            }),
            None => Ok(Self(value.into())),
        }
    }

    /// The ref as text.
    ///
    /// ```
    /// # let r = identity_core::CredentialRef::new("x").unwrap();
    /// assert_eq!(r.as_str(), "x");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the ref looks like secret material rather than a name: a known token prefix
    /// (`sk-`, `ghp_`, `github_pat_`, `xoxb-`, `AKIA`, `glpat-`, `AIza`, a JWT's `eyJ`), or a
    /// long run of letters and digits with the spread of random text. In the reference's data a
    /// ref is sometimes the live token itself; such a ref is reported wherever a ref is shown.
    ///
    /// ```
    /// use identity_core::CredentialRef;
    /// let looks = |text: &str| CredentialRef::new(text).unwrap().looks_like_secret();
    /// assert!(looks("sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"));
    /// assert!(looks("ghp_16C7e42F292c6912E7710c838347Ae178B4a"));
    /// assert!(looks("Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8"));
    /// assert!(!looks("openai-prod"));
    /// assert!(!looks("vault:openai/user-alice-slot"));
    /// assert!(!looks("team-billing-openai-production-primary-key"));
    /// ```
    pub fn looks_like_secret(&self) -> bool {
        const PREFIXES: &[&str] = &[
            "sk-",
            "sk_live_",
            "sk_test_",
            "rk_live_",
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "xoxb-",
            "xoxp-",
            "xoxa-",
            "AKIA",
            "ASIA",
            "glpat-",
            "AIza",
            "eyJ",
            "hf_",
            "pk_live_",
        ];
        let text = self.as_str();
        if PREFIXES.iter().any(|prefix| text.starts_with(prefix)) && text.len() >= 16 {
            return true;
        }
        // The longest run of characters a token is made of (letters, digits, `+/=_`): names
        // break into words at `-`, `.`, `:` and `/`, tokens rarely do.
        let longest = text
            .split(['-', '.', ':', '/', ' '])
            .map(str::len)
            .max()
            .unwrap_or(0);
        if longest < 24 {
            return false;
        }
        let digits = text.chars().filter(char::is_ascii_digit).count();
        let upper = text.chars().filter(char::is_ascii_uppercase).count();
        let lower = text.chars().filter(char::is_ascii_lowercase).count();
        // Random text mixes classes: a name of words is nearly all lower case.
        [digits, upper, lower]
            .iter()
            .filter(|&&n| n * 10 >= text.len())
            .count()
            >= 2
    }
}

impl fmt::Debug for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CredentialRef {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CredentialRef> for String {
    fn from(value: CredentialRef) -> Self {
        value.0.to_string()
    }
}

impl AsRef<str> for CredentialRef {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A credential: its metadata, and (apart from its `ref`) its secret material.
///
/// The JSON form is the reference's, camelCase, with `expiresAt` and `lastRotated` as RFC 3339
/// strings. The secret is never part of it: [`Credential::secret`] is skipped by serde and
/// redacted by `Debug`; stores fill it in from where they keep secrets.
///
/// ```
/// use identity_core::{Credential, CredentialKind, CredentialStatus, Secret};
///
/// let credential = Credential::new("cred-openai", CredentialKind::Fixed, "openai-prod")?
///     .with_scope("read write")
///     .with_secret(Secret::new("sk-live-canary"));
/// assert_eq!(credential.status, CredentialStatus::Active);
/// assert!(!format!("{credential:?}").contains("sk-live-canary"));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawCredential", into = "RawCredential")]
#[non_exhaustive]
pub struct Credential {
    /// Unique identifier, reported in resolutions and audit events.
    pub id: String,
    /// Whom the credential acts for.
    pub kind: CredentialKind,
    /// Human-readable name.
    pub name: String,
    /// What the credential may do, as free text or OAuth-style scopes (`"read write"`).
    pub scope: String,
    /// Lifecycle state.
    pub status: CredentialStatus,
    /// The provider it is for (`openai`, `github`, ...), free text.
    pub provider: Option<String>,
    /// The slot name rules refer to. Never the secret.
    pub reference: CredentialRef,
    /// When the credential stops being valid; `None` means it does not expire.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last rotated.
    pub last_rotated: Option<OffsetDateTime>,
    /// Free key/value labels.
    pub tags: BTreeMap<String, String>,
    /// The reference's slot name of a refresh token, kept for compatibility.
    pub refresh_token_ref: Option<String>,
    /// Rotation policy in days, kept for compatibility.
    pub rotation_interval_days: Option<u32>,
    /// Whether the secret may be delivered to a caller, or only injected by the broker.
    pub delivery: Delivery,
    /// The secret material, if the store holds one for this credential.
    pub secret: Option<Secret>,
}

impl Credential {
    /// A new active credential with an empty name and scope and no secret.
    ///
    /// ```
    /// use identity_core::{Credential, CredentialKind};
    /// let c = Credential::new("c1", CredentialKind::UserDelegated, "alice-github")?;
    /// assert_eq!(c.reference.as_str(), "alice-github");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(
        id: impl Into<String>,
        kind: CredentialKind,
        reference: impl Into<String>,
    ) -> Result<Self, Error> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(Error::InvalidArgument {
                argument: "credential id",
                problem: "is empty".into(),
            });
        }
        Ok(Self {
            id,
            kind,
            name: String::new(),
            scope: String::new(),
            status: CredentialStatus::Active,
            provider: None,
            reference: CredentialRef::new(reference)?,
            expires_at: None,
            last_rotated: None,
            tags: BTreeMap::new(),
            refresh_token_ref: None,
            rotation_interval_days: None,
            delivery: Delivery::ProxyOnly,
            secret: None,
        })
    }

    /// Sets the name.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_name("OpenAI");
    /// assert_eq!(c.name, "OpenAI");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the scope.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_scope("read");
    /// assert_eq!(c.scope, "read");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Sets the status.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, CredentialStatus};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_status(CredentialStatus::Revoked);
    /// assert_eq!(c.status, CredentialStatus::Revoked);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_status(mut self, status: CredentialStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the provider.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_provider("openai");
    /// assert_eq!(c.provider.as_deref(), Some("openai"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets the expiry.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, parse_rfc3339};
    /// let at = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_expires_at(at);
    /// assert_eq!(c.expires_at, Some(at));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_expires_at(mut self, expires_at: OffsetDateTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Adds a tag.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_tag("team", "data");
    /// assert_eq!(c.tags["team"], "data");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Sets the secret material.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, Secret};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_secret(Secret::new("s3cr3t"));
    /// assert_eq!(c.secret.unwrap().expose_secret(), "s3cr3t");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Sets whether the secret may be delivered to a caller.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, Delivery};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_delivery(Delivery::Reveal);
    /// assert_eq!(c.delivery, Delivery::Reveal);
    /// let json = serde_json::to_value(&c).unwrap();
    /// assert_eq!(json["delivery"], "reveal");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// The same credential without its secret: what listings return.
    ///
    /// ```
    /// # use identity_core::{Credential, CredentialKind, Secret};
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_secret(Secret::new("s"));
    /// assert!(c.without_secret().secret.is_none());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn without_secret(mut self) -> Self {
        self.secret = None;
        self
    }

    /// True when the credential has expired at `now`, or will within `skew`: a credential that
    /// dies in flight is as useless as an expired one.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use identity_core::{Credential, CredentialKind, parse_rfc3339};
    /// let at = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    /// let c = Credential::new("c", CredentialKind::Fixed, "r")?.with_expires_at(at);
    /// let now = parse_rfc3339("2029-12-31T23:59:50Z").unwrap();
    /// assert!(!c.is_expired_at(now, Duration::ZERO));
    /// assert!(c.is_expired_at(now, Duration::from_secs(30)));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn is_expired_at(&self, now: OffsetDateTime, skew: Duration) -> bool {
        match self.expires_at {
            None => false,
            Some(expires_at) => {
                expires_at <= now.saturating_add(skew.try_into().unwrap_or(time::Duration::MAX))
            }
        }
    }
}

/// The reference's JSON shape, with times as text, checked on the way in.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawCredential {
    id: String,
    kind: CredentialKind,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    status: CredentialStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_rotated: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation_interval_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Delivery::is_proxy_only")]
    delivery: Delivery,
}

impl TryFrom<RawCredential> for Credential {
    type Error = ConfigError;

    fn try_from(raw: RawCredential) -> Result<Self, Self::Error> {
        let location = format!("credential `{}`", raw.id);
        if raw.id.trim().is_empty() {
            return Err(ConfigError::new("credential", Some("id"), "is empty"));
        }
        let reference = CredentialRef::new(raw.reference)
            .map_err(|err| ConfigError::new(&location, Some("ref"), problem_of(err)))?;
        let time = |field: &str, value: Option<String>| {
            value
                .map(|text| {
                    parse_rfc3339(&text)
                        .map_err(|err| ConfigError::new(&location, Some(field), err.to_string()))
                })
                .transpose()
        };
        Ok(Self {
            expires_at: time("expiresAt", raw.expires_at)?,
            last_rotated: time("lastRotated", raw.last_rotated)?,
            id: raw.id,
            kind: raw.kind,
            name: raw.name,
            scope: raw.scope,
            status: raw.status,
            provider: raw.provider,
            reference,
            tags: raw.tags,
            refresh_token_ref: raw.refresh_token_ref,
            rotation_interval_days: raw.rotation_interval_days,
            delivery: raw.delivery,
            secret: None,
        })
    }
}

impl From<Credential> for RawCredential {
    fn from(credential: Credential) -> Self {
        Self {
            id: credential.id,
            kind: credential.kind,
            name: credential.name,
            scope: credential.scope,
            status: credential.status,
            provider: credential.provider,
            reference: credential.reference.into(),
            expires_at: credential.expires_at.map(format_rfc3339),
            last_rotated: credential.last_rotated.map(format_rfc3339),
            tags: credential.tags,
            refresh_token_ref: credential.refresh_token_ref,
            rotation_interval_days: credential.rotation_interval_days,
            delivery: credential.delivery,
        }
    }
}

fn problem_of(err: Error) -> String {
    match err {
        Error::InvalidArgument { problem, .. } => problem,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_json_round_trips_without_the_secret() {
        let json = r#"{"id":"cred-user-alice","kind":"user-delegated","name":"Alice","status":"active",
            "provider":"openai","scope":"read write","ref":"vault:openai/user-alice-slot",
            "expiresAt":"2030-01-01T00:00:00.000Z","lastRotated":"2026-01-01T00:00:00+01:00",
            "refreshTokenRef":"vault:openai/alice-refresh","rotationIntervalDays":30}"#;
        let credential: Credential = serde_json::from_str(json).unwrap();
        assert_eq!(credential.kind, CredentialKind::UserDelegated);
        assert_eq!(
            credential.reference.as_str(),
            "vault:openai/user-alice-slot"
        );
        assert_eq!(credential.expires_at.unwrap().year(), 2030);
        assert_eq!(credential.last_rotated.unwrap().hour(), 0);
        let out = serde_json::to_value(credential.with_secret(Secret::new("canary-xyz"))).unwrap();
        assert_eq!(out["ref"], "vault:openai/user-alice-slot");
        assert_eq!(out["expiresAt"], "2030-01-01T00:00:00Z");
        assert_eq!(out["lastRotated"], "2025-12-31T23:00:00Z");
        assert!(!out.to_string().contains("canary-xyz"));
    }

    #[test]
    fn unparseable_expiry_names_the_credential_and_field() {
        let json =
            r#"{"id":"c9","kind":"fixed","status":"active","ref":"r","expiresAt":"next tuesday"}"#;
        let err = serde_json::from_str::<Credential>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("credential `c9`, field `expiresAt`"), "{err}");
    }

    #[test]
    fn missing_status_is_refused_not_assumed_active() {
        let json = r#"{"id":"c1","kind":"fixed","ref":"r"}"#;
        let err = serde_json::from_str::<Credential>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("status"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_enums_are_refused() {
        let unknown = r#"{"id":"c1","kind":"fixed","status":"active","ref":"r","secret":"x"}"#;
        assert!(serde_json::from_str::<Credential>(unknown).is_err());
        let bad_kind = r#"{"id":"c1","kind":"service","status":"active","ref":"r"}"#;
        assert!(serde_json::from_str::<Credential>(bad_kind).is_err());
    }

    #[test]
    fn expiry_is_compared_as_time_not_text() {
        // As strings "2030-01-01T05:00:00+09:00" > "2029-12-31T21:00:00Z", as times it is earlier.
        let c = Credential::new("c", CredentialKind::Fixed, "r")
            .unwrap()
            .with_expires_at(parse_rfc3339("2030-01-01T05:00:00+09:00").unwrap());
        let now = parse_rfc3339("2029-12-31T21:00:00Z").unwrap();
        assert!(c.is_expired_at(now, Duration::ZERO));
    }
}
