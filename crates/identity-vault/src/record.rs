//! The KV v2 entries this store writes: a credential with its secret, and a migration lease.

use identity_core::{Credential, CredentialRef, Secret, format_rfc3339, parse_rfc3339};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::failure::Failure;

/// The field of a credential's entry that holds the secret material. Every other field is the
/// credential's own camelCase JSON, so `bao kv get` shows the metadata as the reference writes it.
pub const SECRET_FIELD: &str = "secret";

/// The entry written for `credential`: its JSON, plus [`SECRET_FIELD`] when it has a secret.
pub(crate) fn encode_credential(credential: &Credential) -> Result<Map<String, Value>, Failure> {
    let Value::Object(mut fields) = serde_json::to_value(credential)
        .map_err(|_| Failure::Malformed("the credential could not be turned into JSON".into()))?
    else {
        return Err(Failure::Malformed(
            "a credential is not a JSON object".into(),
        ));
    };
    if let Some(secret) = &credential.secret {
        fields.insert(
            SECRET_FIELD.into(),
            Value::String(secret.expose_secret().to_owned()),
        );
    }
    Ok(fields)
}

/// The credential in the entry read at slot `reference`.
///
/// The entry must name the same ref as its path: an entry copied or moved under another name is
/// refused rather than served for a slot it was not written for.
pub(crate) fn decode_credential(
    reference: &CredentialRef,
    data: Value,
) -> Result<Credential, Failure> {
    let Value::Object(mut fields) = data else {
        return Err(Failure::Malformed("the entry is not a JSON object".into()));
    };
    let secret = match fields.remove(SECRET_FIELD) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Secret::new(text)),
        Some(_) => {
            return Err(Failure::Malformed(format!(
                "field `{SECRET_FIELD}` is not a string"
            )));
        }
    };
    // The secret is out of `fields` before parsing, so no parse error can quote it.
    let mut credential: Credential = serde_json::from_value(Value::Object(fields))
        .map_err(|err| Failure::Malformed(format!("not a credential: {err}")))?;
    if &credential.reference != reference {
        return Err(Failure::Malformed(format!(
            "the entry names ref `{}`, not its own slot",
            credential.reference
        )));
    }
    credential.secret = secret;
    Ok(credential)
}

/// A migration lease as stored: who holds it until when. A released lease has no holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) holder: Option<String>,
    pub(crate) expires_at: OffsetDateTime,
}

impl Lease {
    /// A lease held by `holder` until `expires_at`.
    pub(crate) fn held(holder: &str, expires_at: OffsetDateTime) -> Self {
        Self {
            holder: Some(holder.to_owned()),
            expires_at,
        }
    }

    /// A free lease, as written on release.
    pub(crate) fn released(at: OffsetDateTime) -> Self {
        Self {
            holder: None,
            expires_at: at,
        }
    }

    /// The migration holding the lease at `now`, if any.
    pub(crate) fn holder_at(&self, now: OffsetDateTime) -> Option<&str> {
        self.holder.as_deref().filter(|_| self.expires_at > now)
    }

    pub(crate) fn encode(&self) -> Value {
        serde_json::json!({
            "holder": self.holder,
            "expiresAt": format_rfc3339(self.expires_at),
        })
    }

    pub(crate) fn decode(data: &Value) -> Result<Self, Failure> {
        let malformed = |what: &str| Failure::Malformed(format!("lease entry: {what}"));
        let holder = match data.get("holder") {
            None | Some(Value::Null) => None,
            Some(Value::String(holder)) => Some(holder.clone()),
            Some(_) => return Err(malformed("`holder` is not a string")),
        };
        let expires_at = data
            .get("expiresAt")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("`expiresAt` is missing"))
            .and_then(|text| {
                parse_rfc3339(text).map_err(|_| malformed("`expiresAt` is not RFC 3339"))
            })?;
        Ok(Self { holder, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::CredentialKind;

    fn reference(text: &str) -> CredentialRef {
        CredentialRef::new(text).unwrap()
    }

    #[test]
    fn a_credential_round_trips_with_its_secret_in_its_own_field() {
        let credential = Credential::new("c1", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_scope("read")
            .with_secret(Secret::new("sk-canary"));
        let entry = encode_credential(&credential).unwrap();
        assert_eq!(entry["secret"], "sk-canary");
        assert_eq!(entry["ref"], "openai");
        assert_eq!(entry["status"], "active");
        let back = decode_credential(&reference("openai"), Value::Object(entry)).unwrap();
        assert_eq!(back.scope, "read");
        assert_eq!(back.secret.unwrap().expose_secret(), "sk-canary");
    }

    #[test]
    fn bad_entries_are_refused_without_quoting_the_secret() {
        let wrong_slot = serde_json::json!({"id":"c","kind":"fixed","status":"active","ref":"other","secret":"sk-canary"});
        let err = decode_credential(&reference("openai"), wrong_slot).unwrap_err();
        assert!(
            matches!(&err, Failure::Malformed(d) if d.contains("`other`")),
            "{err:?}"
        );
        let bad_field = serde_json::json!({"id":"c","kind":"fixed","status":"bogus","ref":"openai","secret":"sk-canary"});
        let err = decode_credential(&reference("openai"), bad_field).unwrap_err();
        assert!(!format!("{err:?}").contains("sk-canary"));
        let secret_not_text = serde_json::json!({"id":"c","kind":"fixed","status":"active","ref":"openai","secret":7});
        assert!(decode_credential(&reference("openai"), secret_not_text).is_err());
        assert!(decode_credential(&reference("openai"), serde_json::json!("text")).is_err());
    }

    #[test]
    fn leases_lapse_and_round_trip() {
        let at = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let lease = Lease::held("m1", at);
        assert_eq!(Lease::decode(&lease.encode()).unwrap(), lease);
        assert_eq!(lease.holder_at(at - time::Duration::SECOND), Some("m1"));
        assert_eq!(lease.holder_at(at), None);
        assert_eq!(
            Lease::released(at).holder_at(at - time::Duration::DAY),
            None
        );
        assert!(Lease::decode(&serde_json::json!({"holder": 3})).is_err());
    }
}
