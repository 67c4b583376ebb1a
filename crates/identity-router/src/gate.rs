//! [`Gate`]: a check that may still refuse a credential the rules granted (a budget, a policy).

use std::fmt;
use std::sync::Arc;

use identity_core::RequestContext;

use crate::outcome::{DenialReason, Resolution};

/// Asked after a rule granted a credential, before the resolution is returned: `Err` refuses it
/// with that reason (and the rule that had granted it). A gate may [`Resolution::keep`] what
/// must live as long as the credential is in use (a concurrency slot). A refusal never falls through to a
/// lower rule: the request was answered, and refused. Gates run in the order they were added;
/// the first refusal ends the resolution.
///
/// ```
/// use identity_core::RequestContext;
/// use identity_router::{DenialReason, Gate, Resolution};
///
/// /// Nobody acts for `mallory`.
/// #[derive(Debug)]
/// struct NotMallory;
///
/// #[async_trait::async_trait]
/// impl Gate for NotMallory {
///     async fn admit(&self, context: &RequestContext, _: &mut Resolution) -> Result<(), DenialReason> {
///         if context.user_id == "mallory" {
///             return Err(DenialReason::BudgetExhausted { budget: "none-for-mallory".into(), retry_after_secs: 3600 });
///         }
///         Ok(())
///     }
/// }
/// let builder = identity_router::Router::builder().gate(NotMallory);
/// ```
#[async_trait::async_trait]
pub trait Gate: Send + Sync + fmt::Debug + 'static {
    /// Admits `resolution` for `context`, or says why not.
    async fn admit(
        &self,
        context: &RequestContext,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason>;
}

#[async_trait::async_trait]
impl<T: Gate + ?Sized> Gate for Arc<T> {
    async fn admit(
        &self,
        context: &RequestContext,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason> {
        (**self).admit(context, resolution).await
    }
}
