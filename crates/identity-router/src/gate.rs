//! [`Gate`]: a check that may still refuse a credential the rules granted (a budget, a policy,
//! an approval), and what it decides on: the [`Admission`] of a grant for an [`Intent`].

use std::fmt;
use std::sync::Arc;

use identity_core::{RequestContext, RoutingRule};

use crate::outcome::{DenialReason, Resolution};

/// Asked after a rule granted a credential, before the resolution is returned: `Err` refuses it
/// with that reason (and the rule that had granted it). A gate may [`Resolution::keep`] what
/// must live as long as the credential is in use (a concurrency slot). A refusal never falls through to a
/// lower rule: the request was answered, and refused. Gates run in the order they were added;
/// the first refusal ends the resolution.
///
/// ```
/// use identity_router::{Admission, DenialReason, Gate, Resolution};
///
/// /// Nobody acts for `mallory`.
/// #[derive(Debug)]
/// struct NotMallory;
///
/// #[async_trait::async_trait]
/// impl Gate for NotMallory {
///     async fn admit(&self, admission: &Admission<'_>, _: &mut Resolution) -> Result<(), DenialReason> {
///         if admission.context.user_id == "mallory" {
///             return Err(DenialReason::NotPermitted { policies: vec![], detail: "not for mallory".into() });
///         }
///         Ok(())
///     }
/// }
/// let builder = identity_router::Router::builder().gate(NotMallory);
/// ```
#[async_trait::async_trait]
pub trait Gate: Send + Sync + fmt::Debug + 'static {
    /// Admits `resolution` for `admission`, or says why not.
    async fn admit(
        &self,
        admission: &Admission<'_>,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason>;
}

#[async_trait::async_trait]
impl<T: Gate + ?Sized> Gate for Arc<T> {
    async fn admit(
        &self,
        admission: &Admission<'_>,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason> {
        (**self).admit(admission, resolution).await
    }
}

/// What a gate decides on: the request, what its credential is for, and the rule that granted
/// it.
///
/// ```
/// fn asked_by<'a>(admission: &identity_router::Admission<'a>) -> Option<&'a str> {
///     admission.intent.requester.as_deref()
/// }
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Admission<'a> {
    /// The request's context.
    pub context: &'a RequestContext,
    /// What the credential is for, and who asked.
    pub intent: &'a Intent,
    /// The rule that granted the credential.
    pub rule: &'a RoutingRule,
}

/// What a resolution's credential is for, and who asked for it: gates decide on it (a policy
/// on the action, an approval bound to the exact call).
///
/// ```
/// use identity_router::{Call, Intent, Purpose};
/// let intent = Intent::new(Purpose::Resolve).requested_by("agent-a");
/// assert_eq!(intent.purpose.action(), "resolve");
/// let call = Call::new("github", "POST", "/repos/x/issues").with_body(b"{}");
/// assert_eq!(Intent::new(Purpose::Proxy(call)).purpose.action(), "proxy");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Intent {
    /// What the credential is for.
    pub purpose: Purpose,
    /// The authenticated caller that asked (an API key's or a workload's name), if any.
    pub requester: Option<String>,
}

impl Intent {
    /// An intent nobody in particular asked for.
    pub fn new(purpose: Purpose) -> Self {
        Self {
            purpose,
            requester: None,
        }
    }

    /// The same intent, asked by `requester`.
    #[must_use]
    pub fn requested_by(mut self, requester: impl Into<String>) -> Self {
        self.requester = Some(requester.into());
        self
    }
}

/// What the credential of a resolution will do.
///
/// ```
/// assert_eq!(identity_router::Purpose::Deliver.action(), "deliver");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Resolved for its metadata, or for use inside the caller (`/api/resolve`, the layer).
    Resolve,
    /// Its secret handed to the caller (`/api/deliver`, `exec`).
    Deliver,
    /// Put into one call to an upstream by the injection proxy.
    Proxy(Call),
}

impl Purpose {
    /// The action's name in policies: `resolve`, `deliver` or `proxy`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Deliver => "deliver",
            Self::Proxy(_) => "proxy",
        }
    }

    /// The proxied call, for [`Purpose::Proxy`].
    pub fn call(&self) -> Option<&Call> {
        match self {
            Self::Proxy(call) => Some(call),
            _ => None,
        }
    }
}

/// One proxied call as an approval binds to it: upstream, method, path, query and the SHA-256
/// of its body.
///
/// ```
/// let call = identity_router::Call::new("github", "post", "/user").with_query("a=1");
/// assert_eq!(call.method, "POST");
/// assert!(call.body_sha256.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The upstream's name.
    pub upstream: String,
    /// The method, upper case.
    pub method: String,
    /// The path under the upstream's base.
    pub path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// The SHA-256 of the body, when the whole body was read before the call (a body that
    /// streams has none, and cannot be approved).
    pub body_sha256: Option<[u8; 32]>,
}

impl Call {
    /// A call without query, with an unread body.
    pub fn new(
        upstream: impl Into<String>,
        method: impl AsRef<str>,
        path: impl Into<String>,
    ) -> Self {
        Self {
            upstream: upstream.into(),
            method: method.as_ref().to_ascii_uppercase(),
            path: path.into(),
            query: None,
            body_sha256: None,
        }
    }

    /// The same call with `query`.
    #[must_use]
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// The same call whose whole body is `body`.
    #[must_use]
    pub fn with_body(mut self, body: &[u8]) -> Self {
        use sha2::Digest;
        self.body_sha256 = Some(sha2::Sha256::digest(body).into());
        self
    }
}
