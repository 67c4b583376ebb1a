//! The answer of a token endpoint (RFC 6749 §5.1, RFC 8693 §2.2.1), read by one set of rules.

use std::fmt;
use std::time::Duration;

use identity_core::{OffsetDateTime, Secret};
use serde_json::{Map, Value};

use crate::oauth::error::OAuthError;

/// The longest lifetime believed: a server that says more is taken to mean one year.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a token endpoint says the token is (`token_type`).
///
/// ```
/// use identity_http::TokenKind;
/// assert_eq!(TokenKind::parse(Some("bearer")), Some(TokenKind::Bearer));
/// assert_eq!(TokenKind::parse(Some("DPoP")), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// `Bearer` (any case): usable as a bearer token.
    Bearer,
    /// `N_A` (RFC 8693): the issued token is not an access token and is never used as one.
    NotApplicable,
    /// The server gave no `token_type` (RFC 6749 requires it; some servers leave it out).
    Unstated,
}

impl TokenKind {
    /// The kind of a `token_type` value; `None` for a type this client cannot use (`DPoP`,
    /// `mac`, ...).
    ///
    /// ```
    /// assert_eq!(identity_http::TokenKind::parse(None), Some(identity_http::TokenKind::Unstated));
    /// ```
    pub fn parse(token_type: Option<&str>) -> Option<Self> {
        match token_type {
            None => Some(Self::Unstated),
            Some(t) if t.eq_ignore_ascii_case("bearer") => Some(Self::Bearer),
            Some(t) if t.eq_ignore_ascii_case("n_a") => Some(Self::NotApplicable),
            Some(_) => None,
        }
    }
}

/// A token endpoint's successful answer. `Debug` shows no token.
///
/// ```
/// use identity_http::{Answer, TokenResponse};
/// let answer = Answer::new(200, None, br#"{"access_token":"t","token_type":"Bearer","expires_in":"3600"}"#.to_vec());
/// let token = TokenResponse::read(&answer)?;
/// assert_eq!(token.lifetime, Some(std::time::Duration::from_secs(3600)));
/// # Ok::<(), identity_http::OAuthError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The token (`access_token`; RFC 8693 names any issued token so).
    pub access_token: Secret,
    /// What it is.
    pub kind: TokenKind,
    /// How long it lives, clamped to [0, [`MAX_LIFETIME`]]; zero when the server said it has
    /// expired already (a negative `expires_in`), `None` when the server did not say.
    pub lifetime: Option<Duration>,
    /// The refresh token, if any.
    pub refresh_token: Option<Secret>,
    /// The ID token (OpenID Connect), if any.
    pub id_token: Option<Secret>,
    /// The scope granted, when the server says.
    pub scope: Option<String>,
    /// RFC 8693's `issued_token_type`, when present.
    pub issued_token_type: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("kind", &self.kind)
            .field("lifetime", &self.lifetime)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("scope", &self.scope)
            .field("issued_token_type", &self.issued_token_type)
            .finish_non_exhaustive()
    }
}

impl TokenResponse {
    /// Reads a token endpoint's answer: [`read_oauth_answer`](crate::read_oauth_answer)'s
    /// rules, then a success must carry a non-empty string `access_token`; `expires_in` may be
    /// a number or a numeric string (whole or not), is clamped to [0, one year], and `null` is
    /// absent; a `token_type` this client cannot use (`DPoP`, `mac`) is refused.
    ///
    /// ```
    /// use identity_http::{Answer, TokenResponse};
    /// let read = |body: &str| TokenResponse::read(&Answer::new(200, None, body.as_bytes().to_vec()));
    /// assert_eq!(read(r#"{"access_token":"t","expires_in":9223372036854775807}"#)?.lifetime, Some(identity_http::MAX_LIFETIME));
    /// assert_eq!(read(r#"{"access_token":"t","expires_in":-1e18}"#)?.lifetime, Some(std::time::Duration::ZERO));
    /// assert_eq!(read(r#"{"access_token":"t","expires_in":null}"#)?.lifetime, None);
    /// assert!(read(r#"{"access_token":"t","expires_in":"soon"}"#).is_err());
    /// # Ok::<(), identity_http::OAuthError>(())
    /// ```
    pub fn read(answer: &crate::Answer) -> Result<Self, OAuthError> {
        let object = crate::oauth::error::read_oauth_answer(answer)?;
        Self::from_object(&object, answer.status)
    }

    fn from_object(object: &Map<String, Value>, status: u16) -> Result<Self, OAuthError> {
        let invalid = |problem: &str| OAuthError::InvalidResponse {
            status,
            problem: problem.to_owned(),
        };
        let text = |name: &str| match object.get(name) {
            Some(Value::String(t)) if !t.is_empty() => Ok(Some(t.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(_)) => Ok(None),
            Some(_) => Err(invalid(&format!("`{name}` is not a string"))),
        };
        let access_token = text("access_token")?.ok_or_else(|| invalid("no `access_token`"))?;
        let token_type = text("token_type")?;
        let kind = TokenKind::parse(token_type.as_deref())
            .ok_or_else(|| invalid("a `token_type` this client cannot use"))?;
        let lifetime = lifetime(object.get("expires_in"))
            .map_err(|problem| invalid(&format!("`expires_in` {problem}")))?;
        Ok(Self {
            access_token: Secret::new(access_token),
            kind,
            lifetime,
            refresh_token: text("refresh_token")?.map(Secret::new),
            id_token: text("id_token")?.map(Secret::new),
            scope: text("scope")?,
            issued_token_type: text("issued_token_type")?,
        })
    }

    /// When the token expires, counted from `now`; `None` when the server did not say.
    ///
    /// ```
    /// use identity_http::{Answer, TokenResponse};
    /// let token = TokenResponse::read(&Answer::new(200, None, br#"{"access_token":"t","expires_in":60}"#.to_vec()))?;
    /// let now = identity_core::OffsetDateTime::now_utc();
    /// assert_eq!(token.expires_at(now), Some(now + time::Duration::seconds(60)));
    /// # Ok::<(), identity_http::OAuthError>(())
    /// ```
    pub fn expires_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lifetime.map(|lifetime| {
            // Within a year of now: cannot overflow.
            now.saturating_add(time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX))
        })
    }

    /// Refuses a token that must not be used as a bearer token: `N_A` (RFC 8693).
    ///
    /// ```
    /// use identity_http::{Answer, TokenResponse};
    /// let token = TokenResponse::read(&Answer::new(200, None, br#"{"access_token":"t","token_type":"N_A"}"#.to_vec()))?;
    /// assert!(token.into_bearer().is_err());
    /// # Ok::<(), identity_http::OAuthError>(())
    /// ```
    pub fn into_bearer(self) -> Result<Self, OAuthError> {
        match self.kind {
            TokenKind::Bearer | TokenKind::Unstated => Ok(self),
            TokenKind::NotApplicable => Err(OAuthError::InvalidResponse {
                status: 200,
                problem: "a token of type N_A, which is not a bearer token".into(),
            }),
        }
    }
}

/// `expires_in` in whatever form servers send it.
fn lifetime(value: Option<&Value>) -> Result<Option<Duration>, &'static str> {
    let seconds = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or("is not a number")?,
        // Some servers send the number as a string.
        Some(Value::String(text)) => text.trim().parse::<f64>().map_err(|_| "is not a number")?,
        Some(_) => return Err("is not a number"),
    };
    if !seconds.is_finite() {
        return Err("is not a finite number");
    }
    if seconds <= 0.0 {
        return Ok(Some(Duration::ZERO));
    }
    Ok(Some(
        Duration::try_from_secs_f64(seconds.floor())
            .unwrap_or(MAX_LIFETIME)
            .min(MAX_LIFETIME),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Answer;

    fn read(body: &str) -> Result<TokenResponse, OAuthError> {
        TokenResponse::read(&Answer::new(200, None, body.as_bytes().to_vec()))
    }

    #[test]
    fn lifetimes_are_read_from_any_form_and_clamped() {
        let cases = [
            ("9223372036854775807", Some(MAX_LIFETIME)),
            ("1e300", Some(MAX_LIFETIME)),
            ("-1e18", Some(Duration::ZERO)),
            ("-1", Some(Duration::ZERO)),
            ("0", Some(Duration::ZERO)),
            ("\"3600\"", Some(Duration::from_secs(3600))),
            ("\" 60 \"", Some(Duration::from_secs(60))),
            ("3600.5", Some(Duration::from_secs(3600))),
            ("null", None),
        ];
        for (value, expected) in cases {
            let token = read(&format!(r#"{{"access_token":"t","expires_in":{value}}}"#)).unwrap();
            assert_eq!(token.lifetime, expected, "{value}");
        }
        for bad in ["\"soon\"", "true", "[1]", "\"NaN\"", "\"inf\""] {
            assert!(
                read(&format!(r#"{{"access_token":"t","expires_in":{bad}}}"#)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_success_without_a_usable_token_is_invalid() {
        for body in [
            r#"{}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":7}"#,
            r#"{"access_token":"t","token_type":"DPoP"}"#,
            r#"{"access_token":"t","refresh_token":5}"#,
        ] {
            assert!(
                matches!(read(body), Err(OAuthError::InvalidResponse { .. })),
                "{body}"
            );
        }
        let token = read(r#"{"access_token":"t","token_type":"bearer","refresh_token":"r","id_token":"i","scope":"a b"}"#).unwrap();
        assert_eq!(token.kind, TokenKind::Bearer);
        assert!(token.refresh_token.is_some() && token.id_token.is_some());
        assert!(!format!("{token:?}").contains("\"t\""));
    }

    proptest::proptest! {
        #[test]
        fn any_number_gives_a_lifetime_within_bounds(seconds: f64) {
            let body = serde_json::json!({"access_token": "t", "expires_in": seconds}).to_string();
            if let Ok(token) = read(&body)
                && let Some(lifetime) = token.lifetime
            {
                proptest::prop_assert!(lifetime <= MAX_LIFETIME);
                let now = OffsetDateTime::now_utc();
                proptest::prop_assert!(token.expires_at(now).is_some());
            }
        }

        #[test]
        fn any_integer_gives_a_lifetime_within_bounds(seconds: i64) {
            let token = read(&format!(r#"{{"access_token":"t","expires_in":{seconds}}}"#)).unwrap();
            let lifetime = token.lifetime.unwrap();
            proptest::prop_assert!(lifetime <= MAX_LIFETIME);
            if seconds <= 0 { proptest::prop_assert_eq!(lifetime, Duration::ZERO); }
        }
    }
}
