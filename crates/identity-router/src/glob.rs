//! `*` globs for `matchResourceId` and `matchModel`.
//!
//! Written here rather than taken from `globset`: the syntax is deliberately `*` only (ids and
//! model names are not paths, so there is no separator rule and no `**`), and the index needs the
//! pattern's literal prefix, which a compiled `globset` matcher does not expose.

/// A compiled `*` glob: `*` matches any run of characters (including none); every other
/// character matches itself. `?`, `[`, `]`, `{`, `}` and `\` are reserved and refused, so that a
/// pattern written for a richer glob syntax fails loudly instead of matching something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    /// The literal pieces between stars, in order; a leading or trailing star leaves an empty
    /// first or last piece.
    pieces: Box<[Box<str>]>,
}

const RESERVED: [char; 6] = ['?', '[', ']', '{', '}', '\\'];

impl Glob {
    /// Compiles `pattern`, or says what is wrong with it.
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        if let Some(c) = pattern.chars().find(|c| RESERVED.contains(c)) {
            return Err(format!(
                "`{c}` is reserved in patterns; only `*` is a wildcard"
            ));
        }
        if pattern.contains("**") {
            return Err(
                "`**` has no meaning here; a single `*` already matches any run of characters"
                    .into(),
            );
        }
        Ok(Self {
            pieces: pattern.split('*').map(Box::from).collect(),
        })
    }

    /// True when the pattern has no `*` (it matches one exact value).
    pub(crate) fn is_exact(&self) -> bool {
        self.pieces.len() == 1
    }

    /// The literal text every match starts with (empty when the pattern starts with `*`).
    pub(crate) fn literal_prefix(&self) -> &str {
        &self.pieces[0]
    }

    /// True when `text` matches the whole pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let [first, middle @ .., last] = &*self.pieces else {
            // No star: one piece, an exact comparison.
            return *self.pieces[0] == *text;
        };
        let Some(mut rest) = text.strip_prefix(&**first) else {
            return false;
        };
        let Some(end) = rest.len().checked_sub(last.len()) else {
            return false;
        };
        if !rest.is_char_boundary(end) || rest[end..] != **last {
            return false;
        }
        rest = &rest[..end];
        // Leftmost placement of each middle piece leaves the most room for the next: it finds a
        // match whenever one exists.
        for piece in middle {
            match rest.find(&**piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run() {
        let cases = [
            ("gpt-4*", "gpt-4o", true),
            ("gpt-4*", "gpt-4", true),
            ("gpt-4*", "gpt-3.5", false),
            ("*-prod", "db-prod", true),
            ("*-prod", "db-prod-2", false),
            ("proj-*-db", "proj-a-db", true),
            ("proj-*-db", "proj--db", true),
            ("proj-*-db", "proj-db", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
            ("*", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("é*ü", "éaü", true),
            ("*ü", "ü", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Glob::new(pattern).unwrap().matches(text),
                want,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn reserved_syntax_is_refused() {
        for pattern in ["gpt-4?", "db-[12]", "{a,b}", "a\\*", "a**b"] {
            assert!(Glob::new(pattern).is_err(), "{pattern}");
        }
    }

    #[test]
    fn literal_prefix_is_what_precedes_the_first_star() {
        assert_eq!(Glob::new("proj-*-db").unwrap().literal_prefix(), "proj-");
        assert_eq!(Glob::new("*-db").unwrap().literal_prefix(), "");
        assert!(Glob::new("db").unwrap().is_exact());
    }
}
