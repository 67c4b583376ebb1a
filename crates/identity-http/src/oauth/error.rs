//! One error model for every OAuth endpoint: what the status and the body mean.

use std::fmt;
use std::time::Duration;

use identity_core::Error;
use serde_json::{Map, Value};

use crate::client::Answer;

/// An OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 7591
/// §3.2.2, RFC 8628 §3.5, RFC 8693 §2.2.2). A code this crate does not know is kept as
/// [`OAuthErrorCode::Other`], filtered to RFC 6749's character set (printable ASCII without `"`
/// and `\`) and to 64 bytes, so that a server cannot put control characters or a page of text
/// into a log line or a denial.
///
/// ```
/// use identity_http::OAuthErrorCode;
/// assert_eq!(OAuthErrorCode::parse("invalid_target"), OAuthErrorCode::InvalidTarget);
/// assert_eq!(OAuthErrorCode::parse("slow\ndown\u{7}").as_str(), "slowdown");
/// assert_eq!(OAuthErrorCode::parse(&"x".repeat(1000)).as_str().len(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// The request is malformed.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (code, refresh token, subject token) is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The server does not support this grant.
    UnsupportedGrantType,
    /// The scope asked for is invalid or exceeds what was granted.
    InvalidScope,
    /// The audience or resource asked for is unknown or not allowed (RFC 8693, RFC 8707).
    InvalidTarget,
    /// The user or the server refused the authorization.
    AccessDenied,
    /// The server does not support this response type.
    UnsupportedResponseType,
    /// The server failed.
    ServerError,
    /// The server is overloaded or down for maintenance.
    TemporarilyUnavailable,
    /// The token presented is invalid (RFC 6750).
    InvalidToken,
    /// The token presented lacks the scope needed (RFC 6750).
    InsufficientScope,
    /// The server cannot revoke this type of token (RFC 7009).
    UnsupportedTokenType,
    /// A redirect URI of the registration is refused (RFC 7591).
    InvalidRedirectUri,
    /// A field of the client metadata is refused (RFC 7591).
    InvalidClientMetadata,
    /// The software statement is invalid (RFC 7591).
    InvalidSoftwareStatement,
    /// The software statement is not approved (RFC 7591).
    UnapprovedSoftwareStatement,
    /// The user has not finished authorizing yet (RFC 8628).
    AuthorizationPending,
    /// Poll less often (RFC 8628).
    SlowDown,
    /// The device code expired (RFC 8628).
    ExpiredToken,
    /// Another code, filtered.
    Other(String),
}

impl OAuthErrorCode {
    /// The code of an error answer. GitHub's names for a refused code or refresh token
    /// (`bad_verification_code`, `bad_refresh_token`) read as [`OAuthErrorCode::InvalidGrant`].
    ///
    /// ```
    /// use identity_http::OAuthErrorCode;
    /// assert_eq!(OAuthErrorCode::parse("bad_refresh_token"), OAuthErrorCode::InvalidGrant);
    /// ```
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" | "bad_verification_code" | "bad_refresh_token" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            "unsupported_token_type" => Self::UnsupportedTokenType,
            "invalid_redirect_uri" => Self::InvalidRedirectUri,
            "invalid_client_metadata" => Self::InvalidClientMetadata,
            "invalid_software_statement" => Self::InvalidSoftwareStatement,
            "unapproved_software_statement" => Self::UnapprovedSoftwareStatement,
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "expired_token" => Self::ExpiredToken,
            other => Self::Other(filter_code(other)),
        }
    }

    /// The code as sent (filtered, for [`OAuthErrorCode::Other`]).
    ///
    /// ```
    /// assert_eq!(identity_http::OAuthErrorCode::InvalidGrant.as_str(), "invalid_grant");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 6749 §5.2: `error = 1*( %x20-21 / %x23-5B / %x5D-7E )`; at most 64 bytes kept.
fn filter_code(code: &str) -> String {
    let kept: String = code
        .chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
        .take(64)
        .collect();
    if kept.trim().is_empty() {
        "unreadable_error".into()
    } else {
        kept
    }
}

/// Why an OAuth endpoint gave no usable answer. No variant carries a token, a secret, a URL or
/// the server's `error_description` (a server may quote what it was sent): what reaches a
/// denial or a log line is the code, the status and this crate's own words.
///
/// ```
/// use identity_http::{OAuthError, OAuthErrorCode};
/// let refused = OAuthError::Refused { status: 403, code: OAuthErrorCode::InsufficientScope };
/// assert!(!refused.is_retryable());
/// let err = refused.into_error("token-exchange");
/// assert!(matches!(err, identity_core::Error::Protocol { ref code, .. } if code == "insufficient_scope"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The server refused with an OAuth error object (any 4xx, or GitHub's 200 carrying one).
    #[error("the server refused: `{code}` ({status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The OAuth error code.
        code: OAuthErrorCode,
    },
    /// The server is unavailable or asks to slow down (5xx, 429); the call may be retried.
    #[error("the server answered {status}; try again{}", retry_after.map(|d| format!(" after {} s", d.as_secs())).unwrap_or_default())]
    Retryable {
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The endpoint does not take this method (405).
    #[error("the endpoint does not support this request (405)")]
    NotSupported,
    /// The server answered something the protocol does not allow.
    #[error("the answer is not valid: {problem} ({status})")]
    InvalidResponse {
        /// The HTTP status.
        status: u16,
        /// What is wrong with it, in this crate's words.
        problem: String,
    },
    /// The call did not happen or did not finish: refused by the outbound policy, unreachable,
    /// timed out, redirected, too large.
    #[error(transparent)]
    Http(#[from] HttpFailure),
}

/// A failure of the call itself, before any OAuth meaning: what [`crate::HttpClient::send`]
/// reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct HttpFailure {
    /// What happened (no URL, no token).
    pub detail: String,
    /// True when trying again may work (unreachable, timed out).
    pub retryable: bool,
    /// The code of a refusal by this client (`unsafe_url`, `redirect_refused`,
    /// `response_too_large`), when it was one.
    pub code: Option<String>,
}

impl From<Error> for HttpFailure {
    fn from(err: Error) -> Self {
        match err {
            Error::Protocol {
                code, description, ..
            } => Self {
                detail: description.unwrap_or_else(|| code.clone()),
                retryable: false,
                code: Some(code),
            },
            other => Self {
                retryable: other.is_retryable(),
                detail: match &other {
                    Error::Unavailable { detail, .. } => detail.clone(),
                    _ => other.to_string(),
                },
                code: None,
            },
        }
    }
}

impl From<Error> for OAuthError {
    fn from(err: Error) -> Self {
        Self::Http(err.into())
    }
}

impl OAuthError {
    /// True when the same request may succeed later.
    ///
    /// ```
    /// use identity_http::OAuthError;
    /// assert!(OAuthError::Retryable { status: 503, retry_after: None }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Retryable { .. } => true,
            Self::Http(failure) => failure.retryable,
            _ => false,
        }
    }

    /// The OAuth code of a refusal.
    ///
    /// ```
    /// use identity_http::{OAuthError, OAuthErrorCode};
    /// let err = OAuthError::Refused { status: 400, code: OAuthErrorCode::InvalidGrant };
    /// assert_eq!(err.code(), Some(&OAuthErrorCode::InvalidGrant));
    /// ```
    pub fn code(&self) -> Option<&OAuthErrorCode> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error as the workspace's [`Error`], for `backend`: a refusal is
    /// [`Error::Protocol`] with its code and no description, a retryable failure
    /// [`Error::Unavailable`], a 405 [`Error::NotSupported`].
    ///
    /// ```
    /// let err = identity_http::OAuthError::NotSupported.into_error("dcr");
    /// assert!(matches!(err, identity_core::Error::NotSupported { .. }));
    /// ```
    pub fn into_error(self, backend: &'static str) -> Error {
        match self {
            Self::Refused { code, status } => Error::Protocol {
                backend,
                code: code.as_str().to_owned(),
                description: Some(format!("refused ({status})")),
            },
            Self::NotSupported => Error::NotSupported {
                operation: "this request (the endpoint answered 405 Method Not Allowed)",
                backend,
            },
            Self::InvalidResponse { status, problem } => Error::Protocol {
                backend,
                code: "invalid_response".into(),
                description: Some(format!("{problem} ({status})")),
            },
            retryable @ Self::Retryable { .. } => {
                Error::unavailable(backend, retryable.to_string())
            }
            Self::Http(failure) => match failure.code {
                Some(code) => Error::Protocol {
                    backend,
                    code,
                    description: Some(failure.detail),
                },
                None if failure.retryable => Error::unavailable(backend, failure.detail),
                // A failure that trying again will not mend (a client that cannot authenticate
                // itself) must not read as an outage.
                None => Error::Protocol {
                    backend,
                    code: "request_failed".into(),
                    description: Some(failure.detail),
                },
            },
        }
    }
}

/// Reads an OAuth endpoint's answer by the one set of rules every endpoint of this workspace
/// follows:
///
/// - 429 and 5xx: [`OAuthError::Retryable`], with the server's `Retry-After`;
/// - 405: [`OAuthError::NotSupported`];
/// - any answer whose body is a JSON object with a string `error` (a 4xx, or the 200 GitHub
///   sends for a refused code): [`OAuthError::Refused`] with the typed code;
/// - another 4xx: [`OAuthError::InvalidResponse`];
/// - a 2xx: its JSON object (an empty body reads as an empty object: revocation answers so);
///   a body that is not a JSON object is [`OAuthError::InvalidResponse`].
///
/// ```
/// use identity_http::{Answer, OAuthError, OAuthErrorCode, read_oauth_answer};
/// let refused = read_oauth_answer(&Answer::new(403, None, br#"{"error":"insufficient_scope"}"#.to_vec()));
/// assert_eq!(refused.unwrap_err(), OAuthError::Refused { status: 403, code: OAuthErrorCode::InsufficientScope });
/// assert!(read_oauth_answer(&Answer::new(200, None, br#"{"access_token":"t"}"#.to_vec())).is_ok());
/// ```
pub fn read_oauth_answer(answer: &Answer) -> Result<Map<String, Value>, OAuthError> {
    let status = answer.status;
    if status == 429 || (500..600).contains(&status) {
        return Err(OAuthError::Retryable {
            status,
            retry_after: answer.retry_after,
        });
    }
    if status == 405 {
        return Err(OAuthError::NotSupported);
    }
    let object = if answer.body.iter().all(u8::is_ascii_whitespace) {
        Some(Map::new())
    } else {
        match serde_json::from_slice::<Value>(&answer.body) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        }
    };
    if let Some(code) = object
        .as_ref()
        .and_then(|o| o.get("error"))
        .and_then(Value::as_str)
    {
        return Err(OAuthError::Refused {
            status,
            code: OAuthErrorCode::parse(code),
        });
    }
    let invalid = |problem: &str| OAuthError::InvalidResponse {
        status,
        problem: problem.to_owned(),
    };
    match (status, object) {
        (200..=299, Some(object)) => Ok(object),
        (200..=299, None) => Err(invalid("a success whose body is not a JSON object")),
        (400..=499, _) => Err(invalid("an error answer without an OAuth error object")),
        _ => Err(invalid("an unexpected status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: u16, body: &str) -> Result<Map<String, Value>, OAuthError> {
        read_oauth_answer(&Answer::new(status, None, body.as_bytes().to_vec()))
    }

    #[test]
    fn every_status_has_one_meaning() {
        for status in [400, 401, 403, 404, 409, 422] {
            assert_eq!(
                read(
                    status,
                    r#"{"error":"invalid_client","error_description":"x"}"#
                ),
                Err(OAuthError::Refused {
                    status,
                    code: OAuthErrorCode::InvalidClient
                }),
                "{status}"
            );
            assert!(matches!(
                read(status, "<html>no</html>"),
                Err(OAuthError::InvalidResponse { .. })
            ));
        }
        assert!(matches!(
            read(503, r#"{"error":"temporarily_unavailable"}"#),
            Err(OAuthError::Retryable { status: 503, .. })
        ));
        assert_eq!(read(405, ""), Err(OAuthError::NotSupported));
        assert_eq!(
            read(200, r#"{"error":"bad_verification_code"}"#),
            Err(OAuthError::Refused {
                status: 200,
                code: OAuthErrorCode::InvalidGrant
            })
        );
        assert_eq!(read(200, "").unwrap().len(), 0);
        assert!(matches!(
            read(200, "[1]"),
            Err(OAuthError::InvalidResponse { .. })
        ));
        assert!(matches!(
            read(101, "{}"),
            Err(OAuthError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn failures_of_the_call_keep_whether_a_retry_can_help() {
        let outage: OAuthError = Error::unavailable("http", "timed out").into();
        assert!(outage.is_retryable() && outage.into_error("oauth").is_retryable());
        let misconfigured: OAuthError = Error::from(identity_core::ConfigError::new(
            "client `a`",
            None,
            "no key",
        ))
        .into();
        assert!(!misconfigured.is_retryable());
        assert!(!misconfigured.into_error("oauth").is_retryable());
        let refused: OAuthError = crate::policy::unsafe_url("token_endpoint", "is private").into();
        assert!(
            matches!(refused.into_error("oauth"), Error::Protocol { ref code, .. } if code == "unsafe_url")
        );
    }

    #[test]
    fn descriptions_never_reach_the_error() {
        let err = read(
            400,
            r#"{"error":"invalid_grant","error_description":"token subj-123 expired"}"#,
        )
        .unwrap_err();
        let shown = format!("{err} {err:?} {}", err.clone().into_error("oauth"));
        assert!(!shown.contains("subj-123"), "{shown}");
    }

    #[test]
    fn a_hostile_error_code_is_filtered_and_bounded() {
        let hostile = format!("evil\u{1b}[31m\r\n\"\\{}", "A".repeat(1024 * 1024));
        let body = serde_json::json!({ "error": hostile }).to_string();
        let err = read(400, &body).unwrap_err();
        let code = err.code().unwrap().as_str().to_owned();
        assert!(code.len() <= 64, "{}", code.len());
        assert!(
            code.chars()
                .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
        );
        assert!(code.starts_with("evil[31m"), "{code}");
    }

    proptest::proptest! {
        #[test]
        fn any_code_is_kept_within_the_rfc_character_set(code in ".{0,200}") {
            let parsed = OAuthErrorCode::parse(&code);
            let text = parsed.as_str();
            proptest::prop_assert!(!text.is_empty() && text.len() <= 64);
            proptest::prop_assert!(text.chars().all(|c| matches!(c as u32, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)));
        }

        #[test]
        fn no_answer_makes_the_reader_panic(status in 0u16..1000, body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = read_oauth_answer(&Answer::new(status, None, body));
        }
    }
}
