//! What went wrong with a call to Vault, by meaning, without anything Vault sent back verbatim.

use identity_core::Error;
use rustify::errors::ClientError as HttpError;
use vaultrs::error::ClientError;

use crate::BACKEND;

/// One failed call, classified. Cheap to clone so that the read cache can hand one failure to
/// every caller that waited on the same read.
///
/// It keeps no vaultrs or rustify value: their `Debug` output can carry the response body (a
/// secret, for a read) and their error chains can quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 404, or a soft-deleted or destroyed version.
    NotFound,
    /// 404 for the path itself: no engine is mounted there (a wrong mount or namespace).
    NoMount,
    /// 403: the token's policies do not allow the call, or the token is no longer valid.
    Denied,
    /// A KV v2 check-and-set write lost against a newer version.
    CasMismatch,
    /// A plain write to a mount configured with `cas_required`.
    CasRequired,
    /// The store holds no valid token and cannot get one.
    Unauthenticated(String),
    /// Unreachable, timed out, sealed, standby, throttled, a 5xx, an unreadable answer.
    Unavailable(String),
    /// Any other 4xx, with Vault's own error strings (they describe the request, never data).
    Rejected { status: u16, detail: String },
    /// An entry or an answer that is not what this store writes or expects.
    Malformed(String),
}

impl Failure {
    /// Classifies a vaultrs error.
    pub(crate) fn from_client(error: &ClientError) -> Self {
        match error {
            ClientError::APIError { code, errors } => Self::from_status(*code, errors),
            ClientError::RestClientError { source } => Self::from_http(source),
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
                Self::Malformed("Vault answered with no data".into())
            }
            ClientError::JsonParseError { .. } => {
                Self::Malformed("a value could not be turned into JSON".into())
            }
            _ => Self::Unavailable("the Vault client failed before sending the request".into()),
        }
    }

    fn from_http(error: &HttpError) -> Self {
        match error {
            HttpError::ServerResponseError { code, .. } => Self::from_status(*code, &[]),
            HttpError::RequestError { source, .. } => {
                let reqwest = source.downcast_ref::<reqwest::Error>();
                let detail = match reqwest {
                    Some(e) if e.is_timeout() => "the request to Vault timed out",
                    Some(e) if e.is_connect() => "Vault could not be reached",
                    _ => "the request to Vault failed",
                };
                Self::Unavailable(detail.into())
            }
            HttpError::ResponseError { .. }
            | HttpError::ResponseConversionError { .. }
            | HttpError::ResponseParseError { .. } => {
                Self::Unavailable("Vault's answer could not be read".into())
            }
            _ => Self::Unavailable("the request to Vault could not be built".into()),
        }
    }

    fn from_status(status: u16, errors: &[String]) -> Self {
        let said = || errors.join("; ");
        match status {
            404 if errors.iter().any(|e| e.contains("no handler for route")) => Self::NoMount,
            404 => Self::NotFound,
            403 => Self::Denied,
            401 => Self::Unauthenticated("Vault refused the store's credentials".into()),
            400 if errors
                .iter()
                .any(|e| e.contains("check-and-set parameter did not match")) =>
            {
                Self::CasMismatch
            }
            400 if errors
                .iter()
                .any(|e| e.contains("check-and-set parameter required")) =>
            {
                Self::CasRequired
            }
            429 => Self::Unavailable("Vault is throttling requests (429)".into()),
            503 if errors.iter().any(|e| e.contains("sealed")) => {
                Self::Unavailable("Vault is sealed".into())
            }
            500..=599 => Self::Unavailable(format!("Vault answered {status}")),
            _ => Self::Rejected {
                status,
                detail: said(),
            },
        }
    }

    /// The error a caller sees; `what` says which call on which path failed, e.g.
    /// "read of `agent-identity/openai`".
    pub(crate) fn into_error(self, what: &str) -> Error {
        match self {
            Self::NotFound => Error::NotFound {
                what: what.to_owned(),
            },
            Self::NoMount => Error::InvalidConfig(identity_core::ConfigError::new(
                "vault store",
                Some("mount"),
                format!("no secrets engine answers for the {what} (a wrong mount or namespace?)"),
            )),
            Self::Denied => Error::PermissionDenied {
                backend: BACKEND,
                detail: format!("{what} was refused by the store's Vault policy"),
            },
            Self::CasMismatch => Error::unavailable(
                BACKEND,
                format!("{what} lost a check-and-set race; try again"),
            ),
            Self::CasRequired => Error::Protocol {
                backend: BACKEND,
                code: "400".into(),
                description: Some(format!("{what}: the mount requires check-and-set writes")),
            },
            Self::Unauthenticated(detail) => Error::Unauthenticated {
                backend: BACKEND,
                detail,
            },
            Self::Unavailable(detail) => Error::unavailable(BACKEND, format!("{what}: {detail}")),
            Self::Rejected { status, detail } => Error::Protocol {
                backend: BACKEND,
                code: status.to_string(),
                description: Some(if detail.is_empty() {
                    what.to_owned()
                } else {
                    format!("{what}: {detail}")
                }),
            },
            Self::Malformed(detail) => Error::Protocol {
                backend: BACKEND,
                code: "malformed_entry".into(),
                description: Some(format!("{what}: {detail}")),
            },
        }
    }
}

impl From<&ClientError> for Failure {
    fn from(error: &ClientError) -> Self {
        Self::from_client(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, errors: &[&str]) -> Failure {
        Failure::from_client(&ClientError::APIError {
            code,
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    #[test]
    fn statuses_map_by_meaning() {
        assert_eq!(api(404, &[]), Failure::NotFound);
        assert_eq!(
            api(
                404,
                &["no handler for route \"kv/data/x\". route entry not found."]
            ),
            Failure::NoMount
        );
        assert_eq!(api(403, &["permission denied"]), Failure::Denied);
        assert_eq!(
            api(
                400,
                &["check-and-set parameter did not match the current version"]
            ),
            Failure::CasMismatch
        );
        assert_eq!(
            api(400, &["check-and-set parameter required for this call"]),
            Failure::CasRequired
        );
        assert!(
            matches!(api(503, &["Vault is sealed"]), Failure::Unavailable(d) if d.contains("sealed"))
        );
        assert!(matches!(api(500, &[]), Failure::Unavailable(_)));
        assert!(matches!(api(429, &[]), Failure::Unavailable(_)));
        assert!(matches!(
            api(400, &["bad"]),
            Failure::Rejected { status: 400, .. }
        ));
        // A soft-deleted version answers 404 with a body vaultrs does not read as an API error.
        let soft = ClientError::RestClientError {
            source: HttpError::ServerResponseError {
                code: 404,
                content: Some(r#"{"data":{"data":null}}"#.into()),
            },
        };
        assert_eq!(Failure::from_client(&soft), Failure::NotFound);
    }

    #[test]
    fn errors_are_typed_and_retryable_only_when_unavailable() {
        let denied = Failure::Denied.into_error("read of `p/x`");
        assert!(matches!(denied, Error::PermissionDenied { .. }));
        assert!(!denied.is_retryable());
        let down =
            Failure::Unavailable("Vault could not be reached".into()).into_error("read of `p/x`");
        assert!(down.is_retryable());
        assert_eq!(
            down.to_string(),
            "vault is unavailable: read of `p/x`: Vault could not be reached"
        );
        assert!(matches!(
            Failure::NotFound.into_error("x"),
            Error::NotFound { .. }
        ));
    }
}
