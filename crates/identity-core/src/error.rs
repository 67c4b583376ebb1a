//! The error type shared by every crate of agent-identity.

use std::fmt;

/// A boxed error kept as the [`source`](std::error::Error::source) of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong when a store or a router is asked for a credential, by meaning.
///
/// Each backend maps its own errors into these variants, so that a caller can branch on what
/// happened without knowing which backend answered. `Display` describes this layer only; the
/// backend's own error, when there is one, is reachable through `source()`. No variant carries
/// secret material: backends put only references, identifiers and status codes in them.
///
/// ```
/// use identity_core::Error;
///
/// let err = Error::unavailable("vault", "connection refused");
/// assert!(err.is_retryable());
/// assert_eq!(err.to_string(), "vault is unavailable: connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (or is soft-deleted, or scheduled for deletion).
    #[error("{what} was not found")]
    NotFound {
        /// What was looked for, e.g. "credential `openai-prod`".
        what: String,
    },
    /// The backend refused the operation to the identity the store uses.
    #[error("{backend} denied permission: {detail}")]
    PermissionDenied {
        /// The backend that refused.
        backend: &'static str,
        /// What was refused.
        detail: String,
    },
    /// The store could not authenticate to its backend (expired token, wrong secret).
    #[error("not authenticated to {backend}: {detail}")]
    Unauthenticated {
        /// The backend.
        backend: &'static str,
        /// Why authentication failed.
        detail: String,
    },
    /// The backend could not be reached or answered with a server error; trying again may work.
    #[error("{backend} is unavailable: {detail}")]
    Unavailable {
        /// The backend.
        backend: &'static str,
        /// What happened.
        detail: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The configuration is wrong; the message says where and how.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// An argument given to the call is not acceptable.
    #[error("invalid {argument}: {problem}")]
    InvalidArgument {
        /// The argument, e.g. "credential ref".
        argument: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A protocol peer answered with an error code of its protocol (e.g. OAuth `invalid_grant`).
    #[error("{backend} answered `{code}`{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Protocol {
        /// The peer.
        backend: &'static str,
        /// The protocol's error code, e.g. `invalid_grant`.
        code: String,
        /// The peer's human-readable description, if it sent one.
        description: Option<String>,
    },
    /// The backend has no such operation.
    #[error("{backend} does not support {operation}")]
    NotSupported {
        /// The operation, e.g. "migration leases".
        operation: &'static str,
        /// The backend.
        backend: &'static str,
    },
    /// The user must grant access first: no connection to the provider, one that can no longer
    /// be refreshed, or one without the scopes required. Asking the user to connect (with
    /// `scopes`, when named) can fix it.
    #[error("the user must grant access to {provider}: {detail}")]
    ConsentRequired {
        /// The backend.
        backend: &'static str,
        /// The provider the user must connect.
        provider: String,
        /// Scopes to ask for beyond the provider's own; empty when those suffice.
        scopes: Vec<String>,
        /// Why, for people.
        detail: String,
    },
    /// A migration lease on the credential is held by another migration.
    #[error("credential `{reference}` is leased by another migration")]
    LeaseHeld {
        /// The credential ref.
        reference: String,
    },
}

impl Error {
    /// An [`Error::Unavailable`] without a source.
    ///
    /// ```
    /// let err = identity_core::Error::unavailable("aws", "throttled");
    /// assert!(matches!(err, identity_core::Error::Unavailable { .. }));
    /// ```
    pub fn unavailable(backend: &'static str, detail: impl Into<String>) -> Self {
        Self::Unavailable {
            backend,
            detail: detail.into(),
            source: None,
        }
    }

    /// An [`Error::NotFound`] for a credential ref.
    ///
    /// ```
    /// let err = identity_core::Error::credential_not_found("openai-prod");
    /// assert_eq!(err.to_string(), "credential `openai-prod` was not found");
    /// ```
    pub fn credential_not_found(reference: &str) -> Self {
        Self::NotFound {
            what: format!("credential `{reference}`"),
        }
    }

    /// This error as a problem of the configuration item `location` (e.g. "store `vault`"): a
    /// configuration error keeps its field and problem and takes `location`; any other error
    /// becomes the item's problem, with no field.
    ///
    /// ```
    /// use identity_core::{ConfigError, Error};
    ///
    /// let err = Error::from(ConfigError::new("vault store", Some("prefix"), "must not contain `..`"));
    /// assert_eq!(err.located("store `v`").to_string(), "store `v`, field `prefix`: must not contain `..`");
    /// let err = Error::unavailable("vault", "connection refused");
    /// assert_eq!(err.located("store `v`").to_string(), "store `v`: vault is unavailable: connection refused");
    /// ```
    pub fn located(self, location: &str) -> ConfigError {
        match self {
            Self::InvalidConfig(inner) => ConfigError {
                location: location.to_owned(),
                field: inner.field,
                problem: inner.problem,
            },
            other => ConfigError::new(location, None, other.to_string()),
        }
    }

    /// A copy of this error, to hand one failure to several callers that waited on it: the same
    /// variant and fields. The source, which cannot be cloned, is left out; its message is
    /// already part of the detail where it matters.
    ///
    /// ```
    /// let err = identity_core::Error::unavailable("vault", "sealed");
    /// let copy = err.duplicate();
    /// assert_eq!(copy.to_string(), err.to_string());
    /// assert!(copy.is_retryable());
    /// ```
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NotFound { what } => Self::NotFound { what: what.clone() },
            Self::PermissionDenied { backend, detail } => Self::PermissionDenied {
                backend,
                detail: detail.clone(),
            },
            Self::Unauthenticated { backend, detail } => Self::Unauthenticated {
                backend,
                detail: detail.clone(),
            },
            Self::Unavailable {
                backend, detail, ..
            } => Self::Unavailable {
                backend,
                detail: detail.clone(),
                source: None,
            },
            Self::InvalidConfig(config) => Self::InvalidConfig(config.clone()),
            Self::InvalidArgument { argument, problem } => Self::InvalidArgument {
                argument,
                problem: problem.clone(),
            },
            Self::Protocol {
                backend,
                code,
                description,
            } => Self::Protocol {
                backend,
                code: code.clone(),
                description: description.clone(),
            },
            Self::NotSupported { operation, backend } => Self::NotSupported { operation, backend },
            Self::LeaseHeld { reference } => Self::LeaseHeld {
                reference: reference.clone(),
            },
            Self::ConsentRequired {
                backend,
                provider,
                scopes,
                detail,
            } => Self::ConsentRequired {
                backend,
                provider: provider.clone(),
                scopes: scopes.clone(),
                detail: detail.clone(),
            },
        }
    }

    /// True when the same call may succeed later without any change (the backend was down,
    /// throttled or answered with a server error).
    ///
    /// ```
    /// use identity_core::Error;
    /// assert!(!Error::credential_not_found("x").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A configuration mistake, located: which item (a rule, a credential, a store) and which field.
///
/// ```
/// use identity_core::ConfigError;
///
/// let err = ConfigError::new("rule `r1`", Some("priority"), "is missing");
/// assert_eq!(err.to_string(), "rule `r1`, field `priority`: is missing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The item at fault, e.g. "rule `r1`" or "`credentials[3]`".
    pub location: String,
    /// The field at fault, in the configuration's own spelling (e.g. `matchAction`).
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl ConfigError {
    /// A new configuration error.
    ///
    /// ```
    /// let err = identity_core::ConfigError::new("store `vault`", None, "is not configured");
    /// assert_eq!(err.to_string(), "store `vault`: is not configured");
    /// ```
    pub fn new(
        location: impl Into<String>,
        field: Option<&str>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            location: location.into(),
            field: field.map(str::to_owned),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}, field `{field}`: {}", self.location, self.problem),
            None => write!(f, "{}: {}", self.location, self.problem),
        }
    }
}
