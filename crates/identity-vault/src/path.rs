//! Where credentials and leases live in the KV v2 engine, and which names may go there.

use identity_core::{CredentialRef, Error};

/// Punctuation a ref, mount or prefix may use besides ASCII letters, digits and `/` (the shared
/// state's set, [`identity_state::ALLOWED_PUNCTUATION`]).
///
/// The set is closed on purpose. vaultrs joins paths without encoding them and drops `.` and
/// `..` segments silently, so `a/../b` would read `a/b`; `%` would be decoded by the server into
/// another name; `?` and `#` would end the path. Every character allowed here is the same
/// encoded and decoded, so the path Vault sees is exactly the ref.
pub const ALLOWED_PUNCTUATION: &str = identity_state::ALLOWED_PUNCTUATION;

/// Checks that `text` can be used as a KV v2 path as it is; `what` names it in the error.
pub(crate) fn check_path(text: &str, what: &'static str) -> Result<(), Error> {
    identity_state::check_name(text, what)
}

/// The KV v2 mount and the prefixes under which credentials and leases are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) mount: String,
    pub(crate) prefix: String,
    pub(crate) lease_prefix: String,
}

impl Layout {
    /// Checks every part; the error names the part at fault.
    pub(crate) fn new(mount: &str, prefix: &str, lease_prefix: &str) -> Result<Self, Error> {
        check_path(mount, "vault mount")?;
        check_path(prefix, "vault prefix")?;
        check_path(lease_prefix, "vault lease prefix")?;
        let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        if nested(prefix, lease_prefix) || nested(lease_prefix, prefix) {
            return Err(Error::InvalidArgument {
                argument: "vault lease prefix",
                problem: "must not be the credential prefix, nor lie inside or around it".into(),
            });
        }
        Ok(Self {
            mount: mount.to_owned(),
            prefix: prefix.to_owned(),
            lease_prefix: lease_prefix.to_owned(),
        })
    }

    /// The path of the credential in slot `reference`, once the ref is checked.
    pub(crate) fn credential(&self, reference: &CredentialRef) -> Result<String, Error> {
        check_path(reference.as_str(), "credential ref")?;
        Ok(format!("{}/{}", self.prefix, reference.as_str()))
    }

    /// The path of the migration lease on slot `reference`, once the ref is checked.
    pub(crate) fn lease(&self, reference: &CredentialRef) -> Result<String, Error> {
        check_path(reference.as_str(), "credential ref")?;
        Ok(format!("{}/{}", self.lease_prefix, reference.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> String {
        match check_path(text, "credential ref") {
            Err(Error::InvalidArgument { problem, .. }) => problem,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn ordinary_refs_pass() {
        for ok in [
            "openai-prod",
            "vault:openai/user-alice-slot",
            "team_a/db.primary",
            "a+b=c,d~e@f",
        ] {
            assert!(check_path(ok, "credential ref").is_ok(), "{ok}");
        }
    }

    #[test]
    fn traversal_and_injection_are_refused_with_the_place() {
        assert!(problem("../etc").contains("`..` segment"));
        assert!(problem("a/../b").contains("`..` segment"));
        assert!(problem("a/./b").contains("`.` segment"));
        assert!(problem("%2e%2e/x").contains("`%` at byte 0"));
        assert!(problem("a?version=1").contains("`?` at byte 1"));
        assert!(problem("a#b").contains("`#`"));
        assert!(problem("a\nb").contains("`\\n` at byte 1"));
        assert!(problem("a b").contains("` ` at byte 1"));
        assert!(problem("café").contains("`é`"));
        assert!(problem("/a").contains("empty segment"));
        assert!(problem("a//b").contains("empty segment"));
        assert!(problem("a/").contains("empty segment"));
        assert!(problem(&"a".repeat(513)).contains("longer"));
    }

    #[test]
    fn lease_prefix_must_be_apart_from_the_credentials() {
        assert!(Layout::new("secret", "agent-identity", "agent-identity-leases").is_ok());
        assert!(Layout::new("secret", "ai", "ai").is_err());
        assert!(Layout::new("secret", "ai", "ai/leases").is_err());
        assert!(Layout::new("secret", "ai/creds", "ai").is_err());
        assert!(Layout::new("se%cret", "a", "b").is_err());
    }
}
