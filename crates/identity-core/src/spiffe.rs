//! SPIFFE IDs: the names of workloads.

use std::fmt;

/// A SPIFFE ID, checked against the SPIFFE ID specification: `spiffe://<trust domain><path>`,
/// the trust domain lower-case letters, digits, `.`, `-` and `_`; the path empty or segments of
/// letters, digits, `.`, `-` and `_`, none empty, `.` or `..`; no query, fragment, port or
/// user info. Written here rather than taken from the `spiffe` crate, which brings the whole
/// Workload API client with it for these few rules.
///
/// ```
/// use identity_core::SpiffeId;
///
/// let id = SpiffeId::parse("spiffe://prod.example/billing/agent")?;
/// assert_eq!(id.trust_domain(), "prod.example");
/// assert_eq!(id.path(), "/billing/agent");
/// for bad in ["spiffe://Prod/x", "spiffe://prod/x/", "spiffe://prod//x", "spiffe://prod/../x",
///             "spiffe://prod:443/x", "https://prod/x", "spiffe:///x", "spiffe://prod/x?y=1"] {
///     assert!(SpiffeId::parse(bad).is_err(), "{bad}");
/// }
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    text: String,
    /// Where the path starts in `text`.
    path_at: usize,
}

impl SpiffeId {
    /// The longest SPIFFE ID accepted, in bytes (the specification's URI limit).
    pub const MAX_LEN: usize = 2048;

    /// Checks `text`; the error says what is wrong (never quoting more than the text given).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > Self::MAX_LEN {
            return Err("is longer than 2048 bytes".into());
        }
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or("does not start with `spiffe://`")?;
        let (domain, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        if domain.is_empty() {
            return Err("has no trust domain".into());
        }
        if !domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        {
            return Err(
                "has a trust domain with a character other than a-z, 0-9, `.`, `-` and `_`".into(),
            );
        }
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                if segment.is_empty() {
                    return Err("has an empty path segment (or ends with `/`)".into());
                }
                if segment == "." || segment == ".." {
                    return Err("has a `.` or `..` path segment".into());
                }
                if !segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                {
                    return Err(
                        "has a path character other than letters, digits, `.`, `-` and `_`".into(),
                    );
                }
            }
        }
        Ok(Self {
            text: text.to_owned(),
            path_at: "spiffe://".len() + domain.len(),
        })
    }

    /// The ID as text.
    ///
    /// ```
    /// # let id = identity_core::SpiffeId::parse("spiffe://prod/a").unwrap();
    /// assert_eq!(id.as_str(), "spiffe://prod/a");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The trust domain.
    ///
    /// ```
    /// # let id = identity_core::SpiffeId::parse("spiffe://prod/a").unwrap();
    /// assert_eq!(id.trust_domain(), "prod");
    /// ```
    pub fn trust_domain(&self) -> &str {
        &self.text["spiffe://".len()..self.path_at]
    }

    /// The path, empty or starting with `/`.
    ///
    /// ```
    /// # let id = identity_core::SpiffeId::parse("spiffe://prod").unwrap();
    /// assert_eq!(id.path(), "");
    /// ```
    pub fn path(&self) -> &str {
        &self.text[self.path_at..]
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

#[cfg(test)]
mod tests {
    use super::SpiffeId;

    proptest::proptest! {
        /// Every ID built from the allowed characters parses, and gives back its parts.
        #[test]
        fn well_formed_ids_parse_and_keep_their_parts(
            domain in "[a-z0-9][a-z0-9._-]{0,30}",
            segments in proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,12}", 0..5),
        ) {
            // `.` and `..` alone are not segments; the pattern cannot make them (it starts
            // with a character other than `.`).
            let path: String = segments.iter().map(|s| format!("/{s}")).collect();
            let text = format!("spiffe://{domain}{path}");
            let id = SpiffeId::parse(&text).unwrap();
            proptest::prop_assert_eq!(id.trust_domain(), domain.as_str());
            proptest::prop_assert_eq!(id.path(), path.as_str());
            proptest::prop_assert_eq!(id.as_str(), text.as_str());
        }

        /// Any text never panics, and whatever parses is well formed: it round-trips, its
        /// domain is lower case, and its path has no empty, `.` or `..` segment.
        #[test]
        fn any_text_is_parsed_or_refused_without_panic(text in "\\PC{0,60}") {
            let candidate = format!("spiffe://{text}");
            for input in [text.as_str(), candidate.as_str()] {
                if let Ok(id) = SpiffeId::parse(input) {
                    proptest::prop_assert_eq!(id.as_str(), input);
                    proptest::prop_assert!(!id.trust_domain().is_empty());
                    proptest::prop_assert!(!id.trust_domain().bytes().any(|b| b.is_ascii_uppercase()));
                    if !id.path().is_empty() {
                        proptest::prop_assert!(id.path()[1..]
                            .split('/')
                            .all(|s| !s.is_empty() && s != "." && s != ".."));
                    }
                }
            }
        }
    }
}
