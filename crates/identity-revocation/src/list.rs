//! The revocation list: what is revoked, by whom, why, until when.

use std::collections::HashSet;

use identity_core::{Error, OffsetDateTime, Secret};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What to revoke, with who asked and why.
///
/// ```
/// use identity_core::Secret;
/// use identity_revocation::Revocation;
/// let one = Revocation::credential("cred-7").by("security").because("leaked in a log");
/// let token = Revocation::secret(&Secret::new("gho_token"));
/// assert!(!format!("{token:?}").contains("gho_token"));
/// # let _ = one;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    target: Target,
    by: Option<String>,
    reason: Option<String>,
    until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Target {
    /// A credential, by id: no resolution grants it any more.
    CredentialId(String),
    /// One secret, by its SHA-256 (hex): a user's token, wherever a copy of it is cached.
    SecretSha256(String),
}

fn digest(secret: &Secret) -> String {
    hex::encode(Sha256::digest(secret.expose_secret().as_bytes()))
}

impl Revocation {
    /// The credential of id `id`, for good unless [`Revocation::until`] says otherwise.
    pub fn credential(id: impl Into<String>) -> Self {
        Self::of(Target::CredentialId(id.into()))
    }

    /// The one secret `secret` (kept as its SHA-256): a token revoked upstream whose copies
    /// may still sit in caches.
    pub fn secret(secret: &Secret) -> Self {
        Self::of(Target::SecretSha256(digest(secret)))
    }

    fn of(target: Target) -> Self {
        Self {
            target,
            by: None,
            reason: None,
            until: None,
        }
    }

    /// Who revoked.
    pub fn by(mut self, who: impl Into<String>) -> Self {
        self.by = Some(who.into());
        self
    }

    /// Why.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Until when the revocation must hold (the credential's or token's own end, after which
    /// it is useless anyway); the entry is dropped from the list after it.
    pub fn until(mut self, until: OffsetDateTime) -> Self {
        self.until = Some(until);
        self
    }
}

/// A revocation as recorded.
///
/// ```
/// fn who(record: &identity_revocation::Revoked) -> Option<&str> { record.by.as_deref() }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Revoked {
    /// The credential revoked, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// The secret revoked, as the hex SHA-256 of its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// When (seconds since the epoch).
    pub at: i64,
    /// Who revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Until when it holds (seconds since the epoch); for good when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

impl Revoked {
    /// What was revoked, for logs: the credential's id, or `a secret`.
    pub fn describe(&self) -> String {
        match &self.credential_id {
            Some(id) => format!("credential `{id}`"),
            None => "a secret".into(),
        }
    }

    fn target(&self) -> Option<Target> {
        match (&self.credential_id, &self.secret_sha256) {
            (Some(id), None) => Some(Target::CredentialId(id.clone())),
            (None, Some(sha)) => Some(Target::SecretSha256(sha.clone())),
            _ => None,
        }
    }
}

/// The revocations in force.
///
/// ```
/// let list = identity_revocation::RevocationList::default();
/// assert!(list.is_empty());
/// assert!(!list.has_credential("cred-1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    entries: Vec<Revoked>,
    credentials: HashSet<String>,
    secrets: HashSet<String>,
}

impl RevocationList {
    /// The list in the shared document (`{"entries": [...]}`); an entry that names neither a
    /// credential nor a secret, or both, makes the document unreadable rather than ignored.
    pub fn from_document(document: &Value) -> Result<Self, Error> {
        let malformed = |detail: String| Error::InvalidArgument {
            argument: "revocation list",
            problem: detail,
        };
        let entries: Vec<Revoked> = serde_json::from_value(
            document
                .get("entries")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        )
        .map_err(|err| malformed(err.to_string()))?;
        let mut list = Self::default();
        for (index, entry) in entries.into_iter().enumerate() {
            if entry.target().is_none() {
                return Err(malformed(format!(
                    "entries[{index}] names neither one credential nor one secret"
                )));
            }
            list.insert(entry);
        }
        Ok(list)
    }

    /// The list as the shared document.
    pub fn to_document(&self) -> Value {
        serde_json::json!({ "entries": self.entries })
    }

    fn insert(&mut self, entry: Revoked) {
        if let Some(id) = &entry.credential_id {
            self.credentials.insert(id.clone());
        }
        if let Some(sha) = &entry.secret_sha256 {
            self.secrets.insert(sha.clone());
        }
        self.entries.push(entry);
    }

    /// Adds `revocation` made at `now`; the record in force (the earlier one when it was
    /// revoked already).
    pub(crate) fn add(&mut self, revocation: Revocation, now: OffsetDateTime) -> Revoked {
        if let Some(existing) = self
            .entries
            .iter()
            .find(|entry| entry.target().as_ref() == Some(&revocation.target))
        {
            return existing.clone();
        }
        let (credential_id, secret_sha256) = match revocation.target {
            Target::CredentialId(id) => (Some(id), None),
            Target::SecretSha256(sha) => (None, Some(sha)),
        };
        let record = Revoked {
            credential_id,
            secret_sha256,
            at: now.unix_timestamp(),
            by: revocation.by,
            reason: revocation.reason,
            until: revocation.until.map(OffsetDateTime::unix_timestamp),
        };
        self.insert(record.clone());
        record
    }

    /// Drops the entries whose `until` has passed.
    pub(crate) fn prune(&mut self, now: OffsetDateTime) {
        let now = now.unix_timestamp();
        let kept: Vec<Revoked> = std::mem::take(&mut self.entries)
            .into_iter()
            .filter(|entry| entry.until.is_none_or(|until| until > now))
            .collect();
        *self = Self::default();
        for entry in kept {
            self.insert(entry);
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[Revoked] {
        &self.entries
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the credential `id` is revoked.
    pub fn has_credential(&self, id: &str) -> bool {
        self.credentials.contains(id)
    }

    /// Whether `secret` is revoked (hashed only when some secret is).
    pub fn has_secret(&self, secret: &Secret) -> bool {
        !self.secrets.is_empty() && self.secrets.contains(&digest(secret))
    }
}
