//! The migration lease entries this store writes (credentials use `identity_core`'s stored form).

use identity_core::{format_rfc3339, parse_rfc3339};
use serde_json::Value;
use time::OffsetDateTime;

use crate::failure::Failure;

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
