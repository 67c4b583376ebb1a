//! Whether a credential's scope allows writing, for rules with `readOnly`.
//!
//! The reference let any scope containing the letters `read` pass, so `read:write` and
//! `read/write` passed as read-only. Here a scope is read-only when one of its words grants
//! reading and none grants writing. A scope is split into tokens at white space, `,` and `;`,
//! and each token into words at `:`, `/`, `.`, `_`, `|`, `+` and `=`; words compare without case.

const READ_WORDS: &[&str] = &["read", "reads", "readonly", "read-only", "ro"];
const WRITE_WORDS: &[&str] = &[
    "write",
    "writes",
    "readwrite",
    "read-write",
    "rw",
    "admin",
    "delete",
    "manage",
    "owner",
    "full",
    "all",
    "*",
    "create",
    "update",
    "modify",
    "edit",
    "put",
    "post",
];

fn words(scope: &str) -> impl Iterator<Item = String> + '_ {
    scope
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';'))
        .flat_map(|token| token.split([':', '/', '.', '_', '|', '+', '=']))
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// True when `scope` grants reading and nothing that writes.
pub(crate) fn is_read_only(scope: &str) -> bool {
    let mut reads = false;
    for word in words(scope) {
        if WRITE_WORDS.contains(&word.as_str()) {
            return false;
        }
        reads |= READ_WORDS.contains(&word.as_str());
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::is_read_only;

    #[test]
    fn read_only_scopes_pass() {
        for scope in [
            "read",
            "Read-only replica",
            "crm:read",
            "repo:read, issues:read",
            "RO",
            "db.readonly",
        ] {
            assert!(is_read_only(scope), "{scope}");
        }
    }

    #[test]
    fn scopes_that_can_write_fail() {
        for scope in [
            "read:write",
            "read write",
            "All projects - read/write",
            "crm:read crm:write",
            "read-write",
            "read admin",
            "read,delete",
            "READ WRITE",
            "read *",
        ] {
            assert!(!is_read_only(scope), "{scope}");
        }
    }

    #[test]
    fn scopes_that_do_not_say_read_fail() {
        for scope in ["", "   ", "thread", "readers", "openid profile"] {
            assert!(!is_read_only(scope), "{scope}");
        }
    }
}
