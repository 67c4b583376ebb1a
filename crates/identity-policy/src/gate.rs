//! [`PolicyGate`]: the policies asked about each grant of the router.

use std::sync::{Arc, PoisonError, RwLock};

use identity_core::OffsetDateTime;
use identity_router::{Admission, DenialReason, Gate, Purpose, Resolution};

use crate::policies::Policies;
use crate::query::{Query, ResourceRef};

/// Asks the policies about each credential the rules grant: `resolve` or `deliver` on the
/// `Credential`, `proxy` on the `Upstream`, for the user (inside the calling workload, when it
/// is known), with the request's facts (`provider`, `model`, `requestAction`, `resourceId`,
/// `resourceKind`, `rule`, and for a proxied call `upstream`, `method`, `path`).
///
/// A policy that forbids the grant, or that cannot be evaluated, refuses it with
/// `not_permitted` naming the policies. A rule with `requireAuthorization` needs a policy that
/// permits it. A permitting policy may demand approval ([`Resolution::demand_approval`]).
/// The policies can be replaced while the gate is in use ([`PolicyGate::replace`]).
///
/// ```
/// # use identity_core::*;
/// use identity_policy::{Policies, PolicyGate, PolicySource};
/// let policies = Policies::new(&[PolicySource::new("p.cedar",
///     r#"@id("no-mallory") forbid(principal == User::"mallory", action, resource);"#)], None)?;
/// let store = identity_memory::MemoryCredentialStore::new();
/// store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?.with_secret(Secret::new("s")));
/// let router = identity_router::Router::builder().default_store(store)
///     .rule(RoutingRule::new("r1", "slot").with_priority(1))
///     .gate(PolicyGate::new(policies)).build()?;
/// let ctx = |user: &str| RequestContext::builder().user_id(user).resource_id("r")
///     .resource_kind(ResourceKind::Shared).provider("p").model("m").action("read")
///     .trace_id("t").build().unwrap();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert!(router.resolve(&ctx("alice")).await.is_ok());
/// let denial = router.resolve(&ctx("mallory")).await.unwrap_err();
/// assert_eq!(denial.reason.code(), "not_permitted");
/// assert!(denial.to_string().contains("no-mallory"));
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PolicyGate {
    policies: RwLock<Arc<Policies>>,
    clock: Option<fn() -> OffsetDateTime>,
}

impl PolicyGate {
    /// A gate asking `policies`.
    pub fn new(policies: Policies) -> Self {
        Self {
            policies: RwLock::new(Arc::new(policies)),
            clock: None,
        }
    }

    /// The same gate reading the time from `clock` (for `context.now`).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Puts `policies` in force for the checks that start from now on.
    ///
    /// ```
    /// # use identity_policy::*;
    /// let gate = PolicyGate::new(Policies::new(&[], None)?);
    /// gate.replace(Policies::new(&[PolicySource::new("p", "permit(principal, action, resource);")], None)?);
    /// assert_eq!(gate.policies().len(), 1);
    /// # Ok::<(), PolicyError>(())
    /// ```
    pub fn replace(&self, policies: Policies) {
        *self
            .policies
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(policies);
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The check a grant makes.
    fn query(&self, admission: &Admission<'_>, resolution: &Resolution) -> Query {
        let context = admission.context;
        let purpose = &admission.intent.purpose;
        let resource = match purpose.call() {
            Some(call) => ResourceRef::upstream(call.upstream.clone()),
            None => ResourceRef::credential(resolution.credential_id.clone()),
        };
        let mut query = Query::new(purpose.action(), resource)
            .user(context.user_id.clone())
            .fact("provider", context.provider.clone())
            .fact("model", context.model.clone())
            .fact("requestAction", context.action.clone())
            .fact("resourceId", context.resource_id.clone())
            .fact("resourceKind", context.resource_kind.as_str())
            .fact("rule", &*resolution.rule_id);
        if let Some(workload) = &context.spiffe_id {
            query = query.workload(workload.clone());
        }
        if let Purpose::Proxy(call) = purpose {
            query = query
                .fact("upstream", call.upstream.clone())
                .fact("method", call.method.clone())
                .fact("path", call.path.clone());
        }
        if let Some(clock) = self.clock {
            query = query.at(clock());
        }
        query
    }
}

#[async_trait::async_trait]
impl Gate for PolicyGate {
    async fn admit(
        &self,
        admission: &Admission<'_>,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason> {
        let query = self.query(admission, resolution);
        let decision = self
            .policies()
            .authorize(&query, admission.rule.require_authorization);
        if !decision.allowed {
            return Err(DenialReason::NotPermitted {
                detail: decision.explain(),
                policies: decision.policies,
            });
        }
        if !decision.policies.is_empty() {
            resolution.note(decision.explain());
        }
        if let Some(demand) = decision.approval {
            resolution.demand_approval(demand);
        }
        Ok(())
    }
}
