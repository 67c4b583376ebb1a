//! The stored form of a credential in a secrets backend (Vault KV, AWS Secrets Manager): one JSON
//! object, the credential's own camelCase fields plus its secret in a field of its own.

use serde_json::{Map, Value};

use crate::credential::{Credential, CredentialRef};
use crate::secret::Secret;

/// The field of a stored entry that holds the secret material. Every other field is the
/// credential's JSON, so an operator reading the entry sees the metadata as the reference writes
/// it.
pub const SECRET_FIELD: &str = "secret";

/// Why a stored entry is not a credential. It never quotes the secret.
///
/// ```
/// use identity_core::{CredentialRef, decode_stored};
///
/// let slot = CredentialRef::new("openai")?;
/// let err = decode_stored(&slot, serde_json::json!({"password": "hunter2"})).unwrap_err();
/// assert!(err.to_string().starts_with("not a credential"));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedEntry(String);

/// The stored entry of `credential`: its JSON, plus [`SECRET_FIELD`] when it has a secret.
///
/// ```
/// use identity_core::{Credential, CredentialKind, Secret, encode_stored};
///
/// let c = Credential::new("c1", CredentialKind::Fixed, "openai")?.with_secret(Secret::new("sk"));
/// let entry = encode_stored(&c);
/// assert_eq!(entry["ref"], "openai");
/// assert_eq!(entry["secret"], "sk");
/// # Ok::<(), identity_core::Error>(())
/// ```
pub fn encode_stored(credential: &Credential) -> Map<String, Value> {
    // A credential always serializes to an object of strings, numbers and maps.
    let mut fields = match serde_json::to_value(credential) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    if let Some(secret) = &credential.secret {
        fields.insert(
            SECRET_FIELD.into(),
            Value::String(secret.expose_secret().to_owned()),
        );
    }
    fields
}

/// The credential stored in `entry`, read for slot `reference`.
///
/// The entry must name the same ref as its slot: an entry copied or moved under another name is
/// refused rather than served for a slot it was not written for.
///
/// ```
/// use identity_core::{CredentialRef, decode_stored};
///
/// let entry = serde_json::json!({"id": "c1", "kind": "fixed", "status": "active",
///                                "ref": "openai", "secret": "sk"});
/// let c = decode_stored(&CredentialRef::new("openai")?, entry.clone()).unwrap();
/// assert_eq!(c.secret.unwrap().expose_secret(), "sk");
/// assert!(decode_stored(&CredentialRef::new("other")?, entry).is_err());
/// # Ok::<(), identity_core::Error>(())
/// ```
pub fn decode_stored(
    reference: &CredentialRef,
    entry: Value,
) -> Result<Credential, MalformedEntry> {
    let Value::Object(mut fields) = entry else {
        return Err(MalformedEntry("the entry is not a JSON object".into()));
    };
    let secret = match fields.remove(SECRET_FIELD) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Secret::new(text)),
        Some(_) => {
            return Err(MalformedEntry(format!(
                "field `{SECRET_FIELD}` is not a string"
            )));
        }
    };
    // The secret is out of `fields` before parsing, so no parse error can quote it.
    let mut credential: Credential = serde_json::from_value(Value::Object(fields))
        .map_err(|err| MalformedEntry(format!("not a credential: {err}")))?;
    if &credential.reference != reference {
        return Err(MalformedEntry(format!(
            "the entry names ref `{}`, not its own slot",
            credential.reference
        )));
    }
    credential.secret = secret;
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CredentialKind;

    fn reference(text: &str) -> CredentialRef {
        CredentialRef::new(text).unwrap()
    }

    #[test]
    fn a_credential_round_trips_with_its_secret_in_its_own_field() {
        let credential = Credential::new("c1", CredentialKind::Fixed, "openai")
            .unwrap()
            .with_scope("read")
            .with_secret(Secret::new("sk-canary"));
        let entry = encode_stored(&credential);
        assert_eq!(entry["secret"], "sk-canary");
        assert_eq!(entry["status"], "active");
        let back = decode_stored(&reference("openai"), Value::Object(entry)).unwrap();
        assert_eq!(back.scope, "read");
        assert_eq!(back.secret.unwrap().expose_secret(), "sk-canary");
        let without = encode_stored(&Credential::new("c2", CredentialKind::Fixed, "x").unwrap());
        assert!(!without.contains_key(SECRET_FIELD));
    }

    #[test]
    fn bad_entries_are_refused_without_quoting_the_secret() {
        let wrong_slot = serde_json::json!({"id":"c","kind":"fixed","status":"active","ref":"other","secret":"sk-canary"});
        let err = decode_stored(&reference("openai"), wrong_slot).unwrap_err();
        assert!(err.to_string().contains("`other`"), "{err}");
        let bad_field = serde_json::json!({"id":"c","kind":"fixed","status":"bogus","ref":"openai","secret":"sk-canary"});
        let err = decode_stored(&reference("openai"), bad_field).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("sk-canary"));
        let secret_not_text = serde_json::json!({"id":"c","kind":"fixed","status":"active","ref":"openai","secret":7});
        assert!(decode_stored(&reference("openai"), secret_not_text).is_err());
        assert!(decode_stored(&reference("openai"), serde_json::json!("text")).is_err());
    }
}
