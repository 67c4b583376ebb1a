//! Which keys a shared state takes.

use identity_core::Error;

/// Punctuation a key (or a path built of keys) may use besides ASCII letters, digits and `/`:
/// characters that every backend keeps as they are (no encoding, no glob, no path meaning).
pub const ALLOWED_PUNCTUATION: &str = "-_.:@=+,~";

/// The longest key accepted, in bytes.
const MAX_LEN: usize = 512;

/// Checks that `key` can name a document or a lease: non-empty `/`-separated segments of ASCII
/// letters, digits and `-_.:@=+,~`, none of them `.` or `..`, at most 512 bytes.
///
/// ```
/// assert!(identity_state::check_key("connections/YWxpY2U/Z2l0aHVi").is_ok());
/// let err = identity_state::check_key("connections/../secrets").unwrap_err();
/// assert!(err.to_string().contains("`..` segment"), "{err}");
/// assert!(identity_state::check_key("a b").is_err());
/// ```
pub fn check_key(key: &str) -> Result<(), Error> {
    check_name(key, "shared state key")
}

/// Checks `text` by the rules of [`check_key`], naming it `what` in the error: the one check
/// of names that go into a backend's paths as they are (Vault's paths use it too).
///
/// ```
/// let err = identity_state::check_name("a?b", "vault document key").unwrap_err();
/// assert!(err.to_string().contains("has `?` at byte 1"), "{err}");
/// ```
pub fn check_name(text: &str, what: &'static str) -> Result<(), Error> {
    let refuse = |problem: String| Error::InvalidArgument {
        argument: what,
        problem,
    };
    if text.is_empty() {
        return Err(refuse("is empty".into()));
    }
    if text.len() > MAX_LEN {
        return Err(refuse(format!("is longer than {MAX_LEN} bytes")));
    }
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '/' || ALLOWED_PUNCTUATION.contains(c)))
    {
        let shown = if c.is_control() {
            format!("{c:?}").trim_matches('\'').to_owned()
        } else {
            c.to_string()
        };
        return Err(refuse(format!(
            "has `{shown}` at byte {at}; names here may use ASCII letters, digits, `/` and \
             `{ALLOWED_PUNCTUATION}`"
        )));
    }
    for segment in text.split('/') {
        match segment {
            "" => {
                return Err(refuse(
                    "has an empty segment (a leading, trailing or double `/`)".into(),
                ));
            }
            "." | ".." => return Err(refuse(format!("has a `{segment}` segment"))),
            _ => {}
        }
    }
    Ok(())
}

/// Checks that `document` can be kept: a JSON object (what every backend stores as a document).
///
/// ```
/// assert!(identity_state::check_document(&serde_json::json!({"a": 1})).is_ok());
/// let err = identity_state::check_document(&serde_json::json!([1])).unwrap_err();
/// assert!(err.to_string().contains("must be a JSON object"), "{err}");
/// ```
pub fn check_document(document: &serde_json::Value) -> Result<(), Error> {
    if document.is_object() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            argument: "shared state document",
            problem: "must be a JSON object".into(),
        })
    }
}

/// Checks a folder given to `list`: empty (everything) or a key, with `/` trimmed at its ends.
pub(crate) fn check_folder(folder: &str) -> Result<&str, Error> {
    let folder = folder.trim_matches('/');
    if !folder.is_empty() {
        check_key(folder)?;
    }
    Ok(folder)
}

/// Whether `key` lies in `folder` (as checked by `check_folder`).
pub(crate) fn in_folder(key: &str, folder: &str) -> bool {
    folder.is_empty()
        || key
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_hold_their_own_keys_only() {
        assert!(in_folder("clients/a", "clients"));
        assert!(!in_folder("clientsx/a", "clients"));
        assert!(!in_folder("clients", "clients"));
        assert!(in_folder("anything", ""));
        assert_eq!(check_folder("/clients/").unwrap(), "clients");
        assert!(check_folder("a//b").is_err());
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        for (key, says) in [
            ("", "is empty"),
            ("a//b", "empty segment"),
            ("/a", "empty segment"),
            ("a/./b", "`.` segment"),
            ("a*b", "`*` at byte 1"),
            ("a\nb", "`\\n` at byte 1"),
        ] {
            let err = check_key(key).unwrap_err().to_string();
            assert!(err.contains(says), "{key:?}: {err}");
        }
        assert!(check_key(&"a".repeat(513)).is_err());
        assert!(check_key(&"a".repeat(512)).is_ok());
    }
}
