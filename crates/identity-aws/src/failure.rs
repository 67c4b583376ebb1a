//! What went wrong with a call to Secrets Manager, by meaning.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use identity_core::Error;

use crate::BACKEND;

/// One failed call, classified. Cheap to clone, so that the read cache can hand one failure to
/// every caller that waited on the same read. It keeps no SDK value: only AWS's error code and
/// message, which describe the request, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `ResourceNotFoundException`, or the secret is scheduled for deletion.
    NotFound,
    /// A create lost against a secret of the same name (`ResourceExistsException`).
    Exists,
    /// A write to a secret scheduled for deletion (`InvalidRequestException`).
    ScheduledForDeletion,
    /// Access denied, by IAM or by KMS.
    Denied(String),
    /// The credentials the SDK found are not valid (unknown, expired, bad signature).
    Unauthenticated(String),
    /// Unreachable, timed out, throttled, a 5xx, an unreadable answer.
    Unavailable(String),
    /// Any other refusal, with AWS's code and message.
    Rejected { code: String, message: String },
    /// A stored secret that is not a credential.
    Malformed(String),
}

impl Failure {
    /// Classifies an SDK error.
    pub(crate) fn from_sdk<E>(error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata,
    {
        match error {
            SdkError::TimeoutError(_) => Self::Unavailable("the request timed out".into()),
            SdkError::DispatchFailure(failure) => Self::Unavailable(
                if failure.is_timeout() {
                    "the request timed out"
                } else if failure.is_io() {
                    "Secrets Manager could not be reached"
                } else {
                    "the request could not be sent"
                }
                .into(),
            ),
            SdkError::ResponseError(_) => {
                Self::Unavailable("Secrets Manager's answer could not be read".into())
            }
            SdkError::ConstructionFailure(_) => Self::Unauthenticated(
                "the request could not be built (are AWS credentials and a region available?)"
                    .into(),
            ),
            SdkError::ServiceError(service) => match service.err().code() {
                Some(code) => Self::from_code(Some(code), service.err().message()),
                // No code could be read (an answer that is not the service's JSON, from a proxy
                // or a gateway): the HTTP status still says what kind of failure it is.
                None => Self::from_status(service.raw().status().as_u16()),
            },
            _ => Self::Unavailable("the SDK failed".into()),
        }
    }

    fn from_status(status: u16) -> Self {
        match status {
            403 => Self::Denied(format!("HTTP {status}")),
            401 => Self::Unauthenticated(format!("AWS answered HTTP {status}")),
            429 | 500..=599 => Self::Unavailable(format!("AWS answered HTTP {status}")),
            _ => Self::Rejected {
                code: status.to_string(),
                message: String::new(),
            },
        }
    }

    fn from_code(code: Option<&str>, message: Option<&str>) -> Self {
        let code = code.unwrap_or("unknown");
        let message = message.unwrap_or_default();
        let deletion = message.contains("deletion") || message.contains("deleted");
        match code {
            "ResourceNotFoundException" => Self::NotFound,
            "ResourceExistsException" => Self::Exists,
            "InvalidRequestException" if deletion => Self::ScheduledForDeletion,
            "AccessDeniedException" | "AccessDenied" | "DecryptionFailure" => {
                Self::Denied(code.to_owned())
            }
            "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken"
            | "IncompleteSignature" => Self::Unauthenticated(format!("AWS answered {code}")),
            "ThrottlingException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "InternalServiceError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException" => Self::Unavailable(format!("AWS answered {code}")),
            _ => Self::Rejected {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }

    /// The error a caller sees; `what` says which call on which secret failed.
    pub(crate) fn into_error(self, what: &str) -> Error {
        match self {
            Self::NotFound | Self::ScheduledForDeletion => Error::NotFound {
                what: what.to_owned(),
            },
            Self::Exists => Error::unavailable(
                BACKEND,
                format!("{what}: another writer created it first; try again"),
            ),
            Self::Denied(code) => Error::PermissionDenied {
                backend: BACKEND,
                detail: format!("{what} was refused ({code})"),
            },
            Self::Unauthenticated(detail) => Error::Unauthenticated {
                backend: BACKEND,
                detail,
            },
            Self::Unavailable(detail) => Error::unavailable(BACKEND, format!("{what}: {detail}")),
            Self::Rejected { code, message } => Error::Protocol {
                backend: BACKEND,
                code,
                description: Some(if message.is_empty() {
                    what.to_owned()
                } else {
                    format!("{what}: {message}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_by_meaning() {
        let from = |code: &str, message: &str| Failure::from_code(Some(code), Some(message));
        assert_eq!(from("ResourceNotFoundException", ""), Failure::NotFound);
        assert_eq!(
            from(
                "InvalidRequestException",
                "You can't perform this operation on the secret because it was marked for deletion."
            ),
            Failure::ScheduledForDeletion
        );
        assert!(matches!(
            from("InvalidRequestException", "bad"),
            Failure::Rejected { .. }
        ));
        assert!(matches!(
            from("AccessDeniedException", ""),
            Failure::Denied(_)
        ));
        assert!(matches!(from("DecryptionFailure", ""), Failure::Denied(_)));
        assert!(matches!(
            from("ExpiredTokenException", ""),
            Failure::Unauthenticated(_)
        ));
        assert!(matches!(
            from("ThrottlingException", ""),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            from("InternalServiceError", ""),
            Failure::Unavailable(_)
        ));
    }

    #[test]
    fn answers_without_a_code_map_by_status() {
        assert!(matches!(Failure::from_status(403), Failure::Denied(_)));
        assert!(matches!(
            Failure::from_status(401),
            Failure::Unauthenticated(_)
        ));
        assert!(matches!(Failure::from_status(503), Failure::Unavailable(_)));
        assert!(matches!(Failure::from_status(429), Failure::Unavailable(_)));
        assert!(matches!(
            Failure::from_status(400),
            Failure::Rejected { .. }
        ));
    }

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(
            Failure::Unavailable("x".into())
                .into_error("read")
                .is_retryable()
        );
        for failure in [
            Failure::NotFound,
            Failure::Denied("AccessDeniedException".into()),
            Failure::Unauthenticated("x".into()),
            Failure::Malformed("x".into()),
        ] {
            assert!(!failure.into_error("read").is_retryable());
        }
    }
}
