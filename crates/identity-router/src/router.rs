//! The router: rules, stores, and the resolution of a context.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_core::{
    ConfigError, CredentialStore, MigrationRequest, OffsetDateTime, RequestContext, RoutingRule,
};
use tracing::{Instrument, debug_span};

use crate::audit::audit;
use crate::canary::Arm;
use crate::check::Checked;
use crate::gate::{Admission, Gate, Intent, Purpose};
use crate::index::{RuleIndex, scan_first_match};
use crate::outcome::{
    Denial, DenialReason, ExplainedOutcome, Explanation, PairDenial, Resolution, ResolvedPair,
    RuleVerdict,
};

/// What [`Router::resolve`] resolves for: nothing in particular, asked by nobody in particular.
static RESOLVE: Intent = Intent {
    purpose: Purpose::Resolve,
    requester: None,
};
use crate::rules::{CompiledRule, compile};

/// The name of the store rules use when they name none.
pub const DEFAULT_STORE: &str = "default";

/// The clock skew a router allows by default: a credential that expires within it is refused.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// How the router finds the first matching rule. Both give the same answers; the property tests
/// prove it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Matching {
    /// Through the rule index: the cost does not grow with the number of rules.
    #[default]
    Indexed,
    /// By checking every rule in priority order, as the reference does.
    Scan,
}

type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Told of every resolution the router makes, granted or denied, with how long it took: the
/// hook for metrics. It runs inline, so it must be quick and must not block.
///
/// ```
/// use std::time::Duration;
/// use identity_core::RequestContext;
/// use identity_router::{Denial, Resolution, ResolutionObserver};
///
/// #[derive(Debug)]
/// struct CountDenials(std::sync::atomic::AtomicU64);
///
/// impl ResolutionObserver for CountDenials {
///     fn observe(&self, _: &RequestContext, outcome: Result<&Resolution, &Denial>, _: Duration) {
///         if outcome.is_err() {
///             self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         }
///     }
/// }
/// let builder = identity_router::Router::builder().observer(CountDenials(Default::default()));
/// ```
pub trait ResolutionObserver: Send + Sync + fmt::Debug + 'static {
    /// Called once per resolution, after its audit event.
    fn observe(
        &self,
        context: &RequestContext,
        outcome: Result<&Resolution, &Denial>,
        elapsed: Duration,
    );
}

impl<T: ResolutionObserver + ?Sized> ResolutionObserver for Arc<T> {
    fn observe(
        &self,
        context: &RequestContext,
        outcome: Result<&Resolution, &Denial>,
        elapsed: Duration,
    ) {
        (**self).observe(context, outcome, elapsed);
    }
}

/// Resolves request contexts to credentials; see the [crate documentation](crate).
///
/// Built once with [`Router::builder`], then shared (`Router` is `Send + Sync`; wrap it in an
/// `Arc`). Resolution takes `&self` and holds no lock.
pub struct Router {
    rules: Vec<CompiledRule>,
    index: RuleIndex,
    pub(crate) settings: Settings,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("rules", &self.rules.len())
            .field("settings", &self.settings)
            .finish()
    }
}

/// Everything a router is built with but its rules.
pub(crate) struct Settings {
    pub(crate) stores: Vec<(String, Arc<dyn CredentialStore>)>,
    fall_through: bool,
    pub(crate) clock_skew: Duration,
    matching: Matching,
    pub(crate) clock: Clock,
    observer: Option<Arc<dyn ResolutionObserver>>,
    gates: Vec<Arc<dyn Gate>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            stores: Vec::new(),
            fall_through: false,
            clock_skew: DEFAULT_CLOCK_SKEW,
            matching: Matching::default(),
            clock: Arc::new(OffsetDateTime::now_utc),
            observer: None,
            gates: Vec::new(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field(
                "stores",
                &self.stores.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("fall_through", &self.fall_through)
            .field("clock_skew", &self.clock_skew)
            .field("matching", &self.matching)
            .field("observer", &self.observer)
            .field("gates", &self.gates)
            .finish_non_exhaustive()
    }
}

/// The rules or stores given to [`RouterBuilder::build`] are not acceptable. Every problem is
/// listed, each naming the rule and the field.
///
/// ```
/// use identity_core::RoutingRule;
/// use identity_router::Router;
///
/// let err = Router::builder()
///     .default_store(identity_memory::MemoryCredentialStore::new())
///     .rule(RoutingRule::new("r1", "slot"))
///     .rule(RoutingRule::new("r2", "slot").with_priority(1).with_match_provider(""))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.errors.len(), 2);
/// assert!(err.to_string().contains("rule `r1`, field `priority`"));
/// assert!(err.to_string().contains("rule `r2`, field `matchProvider`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid routing configuration: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct BuildError {
    /// Every problem found.
    pub errors: Vec<ConfigError>,
}

/// Builds a [`Router`]; see [`Router::builder`].
#[derive(Debug, Default)]
pub struct RouterBuilder {
    rules: Vec<RoutingRule>,
    settings: Settings,
}

impl RouterBuilder {
    /// Sets the store of rules that name none (the store named [`DEFAULT_STORE`]).
    ///
    /// ```
    /// let builder = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new());
    /// ```
    pub fn default_store(self, store: impl CredentialStore) -> Self {
        self.store(DEFAULT_STORE, store)
    }

    /// Adds a named store, which rules choose with `"store": "<name>"`. A second store of the
    /// same name replaces the first.
    ///
    /// ```
    /// use identity_core::RoutingRule;
    /// let router = identity_router::Router::builder()
    ///     .store("secrets", identity_memory::MemoryCredentialStore::new())
    ///     .rule(RoutingRule::new("r", "slot").with_priority(1).with_store("secrets"))
    ///     .build();
    /// assert!(router.is_ok());
    /// ```
    pub fn store(mut self, name: impl Into<String>, store: impl CredentialStore) -> Self {
        let name = name.into();
        let store: Arc<dyn CredentialStore> = Arc::new(store);
        match self.settings.stores.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = store,
            None => self.settings.stores.push((name, store)),
        }
        self
    }

    /// Adds one rule.
    ///
    /// ```
    /// let builder = identity_router::Router::builder()
    ///     .rule(identity_core::RoutingRule::new("r", "slot").with_priority(1));
    /// ```
    pub fn rule(mut self, rule: RoutingRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules, after those already added (declaration order breaks priority ties).
    ///
    /// ```
    /// let rules = identity_core::parse_rules_json(r#"[{"id":"r","credentialRef":"c","priority":1}]"#)?;
    /// let builder = identity_router::Router::builder().rules(rules);
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn rules(mut self, rules: impl IntoIterator<Item = RoutingRule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// When `true`, a matching rule whose credential is unavailable (not found, not active,
    /// expired, store down) gives way to the next matching rule. Off by default: the top
    /// matching rule decides.
    ///
    /// ```
    /// let builder = identity_router::Router::builder().fall_through(true);
    /// ```
    pub fn fall_through(mut self, fall_through: bool) -> Self {
        self.settings.fall_through = fall_through;
        self
    }

    /// A credential expiring within `skew` of now counts as expired ([`DEFAULT_CLOCK_SKEW`] by
    /// default).
    ///
    /// ```
    /// let builder = identity_router::Router::builder().clock_skew(std::time::Duration::ZERO);
    /// ```
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.settings.clock_skew = skew;
        self
    }

    /// How to find the first matching rule; [`Matching::Indexed`] by default.
    ///
    /// ```
    /// let builder = identity_router::Router::builder().matching(identity_router::Matching::Scan);
    /// ```
    pub fn matching(mut self, matching: Matching) -> Self {
        self.settings.matching = matching;
        self
    }

    /// The clock expiries are checked against (the system clock by default); for tests.
    ///
    /// ```
    /// let at = identity_core::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    /// let builder = identity_router::Router::builder().clock(move || at);
    /// ```
    pub fn clock(mut self, clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.settings.clock = Arc::new(clock);
        self
    }

    /// Sets the observer told of every resolution (for metrics).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use identity_router::{Denial, Resolution, ResolutionObserver};
    /// # #[derive(Debug)] struct Nothing;
    /// # impl ResolutionObserver for Nothing {
    /// #     fn observe(&self, _: &identity_core::RequestContext, _: Result<&Resolution, &Denial>, _: Duration) {}
    /// # }
    /// let builder = identity_router::Router::builder().observer(Nothing);
    /// ```
    pub fn observer(mut self, observer: impl ResolutionObserver) -> Self {
        self.settings.observer = Some(Arc::new(observer));
        self
    }

    /// Adds a gate asked after each grant ([`Gate`]): budgets, policies.
    pub fn gate(mut self, gate: impl Gate) -> Self {
        self.settings.gates.push(Arc::new(gate));
        self
    }

    /// Checks and compiles the rules.
    ///
    /// A missing priority, an empty matcher or list, a bad glob, a duplicate rule id and a
    /// store that is not configured are errors, all of them reported at once.
    pub fn build(self) -> Result<Router, BuildError> {
        let names: HashMap<String, usize> = self
            .settings
            .stores
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        let default_store = names.get(DEFAULT_STORE).copied();
        if u32::try_from(self.rules.len()).is_err() {
            return Err(BuildError {
                errors: vec![ConfigError::new(
                    "rules",
                    None,
                    "more than 4294967295 rules",
                )],
            });
        }
        let rules =
            compile(self.rules, &names, default_store).map_err(|errors| BuildError { errors })?;
        let index = RuleIndex::new(&rules);
        Ok(Router {
            rules,
            index,
            settings: self.settings,
        })
    }
}

impl Router {
    /// A builder with no store, no rule, no fall-through and the default clock skew.
    ///
    /// ```
    /// let router = identity_router::Router::builder().build().unwrap();
    /// assert_eq!(router.rule_count(), 0);
    /// ```
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// How many rules the router has.
    ///
    /// ```
    /// assert_eq!(identity_router::Router::builder().build().unwrap().rule_count(), 0);
    /// ```
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The rules in the order the router considers them (priority, then declaration).
    ///
    /// ```
    /// # use identity_core::RoutingRule;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new())
    ///     .rule(RoutingRule::new("low", "a").with_priority(1))
    ///     .rule(RoutingRule::new("high", "b").with_priority(9))
    ///     .build().unwrap();
    /// let ids: Vec<_> = router.rules().map(|r| r.id.as_str()).collect();
    /// assert_eq!(ids, ["high", "low"]);
    /// ```
    pub fn rules(&self) -> impl Iterator<Item = &RoutingRule> {
        self.rules.iter().map(|rule| &rule.source)
    }

    /// True when the router falls through to the next matching rule on an unavailable
    /// credential.
    ///
    /// ```
    /// assert!(!identity_router::Router::builder().build().unwrap().falls_through());
    /// ```
    pub fn falls_through(&self) -> bool {
        self.settings.fall_through
    }

    /// The stores, by name.
    ///
    /// ```
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new()).build().unwrap();
    /// assert_eq!(router.stores().next().unwrap().0, "default");
    /// ```
    pub fn stores(&self) -> impl Iterator<Item = (&str, &Arc<dyn CredentialStore>)> {
        self.settings
            .stores
            .iter()
            .map(|(name, store)| (name.as_str(), store))
    }

    /// The id of the first rule matching `ctx`, without asking any store.
    ///
    /// ```
    /// # use identity_core::*;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new())
    ///     .rule(RoutingRule::new("openai", "a").with_priority(5).with_match_provider("openai"))
    ///     .build().unwrap();
    /// let ctx = RequestContext::builder().user_id("u").resource_id("r")
    ///     .resource_kind(ResourceKind::Shared).provider("openai").model("m")
    ///     .action("read").trace_id("t").build().unwrap();
    /// assert_eq!(router.matching_rule(&ctx), Some("openai"));
    /// ```
    pub fn matching_rule(&self, ctx: &RequestContext) -> Option<&str> {
        self.first_match(ctx, None).map(|p| &*self.rules[p].id)
    }

    /// The arm of rule `rule_id`'s canary that the caller of `ctx` is on, without resolving;
    /// `None` when the rule has no canary (or no such rule is loaded). For support ("which
    /// credential does alice get?") and for measuring the pick alone.
    ///
    /// ```
    /// # use identity_core::*;
    /// use identity_router::Arm;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new())
    ///     .rule(RoutingRule::new("llm", "v1").with_priority(1)
    ///         .with_canary(Canary::new("v2", CanaryWeight::percent(100.0).unwrap())))
    ///     .build().unwrap();
    /// let ctx = RequestContext::builder().user_id("u").resource_id("r")
    ///     .resource_kind(ResourceKind::Shared).provider("p").model("m")
    ///     .action("read").trace_id("t").build().unwrap();
    /// assert_eq!(router.arm_of("llm", &ctx), Some(Arm::Canary));
    /// assert_eq!(router.arm_of("other", &ctx), None);
    /// ```
    pub fn arm_of(&self, rule_id: &str, ctx: &RequestContext) -> Option<Arm> {
        let rule = self.rules.iter().find(|rule| &*rule.id == rule_id)?;
        let canary = rule.canary.as_ref()?;
        Some(if canary.picks(&rule.id, ctx) {
            Arm::Canary
        } else {
            Arm::Primary
        })
    }

    fn first_match(&self, ctx: &RequestContext, after: Option<usize>) -> Option<usize> {
        match self.settings.matching {
            Matching::Indexed => self.index.first_match(&self.rules, ctx, after),
            Matching::Scan => scan_first_match(&self.rules, ctx, after),
        }
    }

    /// Resolves `ctx` to a credential, or says why not. Emits one audit event either way.
    ///
    /// The first matching rule by priority decides (ties go to the rule declared first); its
    /// store is asked for the credential with `ctx`, and the credential must be active, not
    /// expired (within the clock skew), of the rule's kind when the rule names one, and unable
    /// to write when the rule is `readOnly`. With fall-through on, an unavailable credential
    /// passes the decision to the next matching rule.
    ///
    /// ```
    /// # use identity_core::*;
    /// # use identity_router::{Router, DenialReason};
    /// let store = identity_memory::MemoryCredentialStore::new();
    /// store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?
    ///     .with_status(CredentialStatus::Revoked));
    /// let router = Router::builder().default_store(store)
    ///     .rule(RoutingRule::new("r1", "slot").with_priority(1)).build().unwrap();
    /// let ctx = RequestContext::builder().user_id("u").resource_id("r")
    ///     .resource_kind(ResourceKind::Shared).provider("p").model("m")
    ///     .action("read").trace_id("t").build().unwrap();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let denial = router.resolve(&ctx).await.unwrap_err();
    /// assert_eq!(denial.reason.code(), "credential_not_active");
    /// assert_eq!(denial.rule_id.as_deref(), Some("r1"));
    /// # });
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub async fn resolve(&self, ctx: &RequestContext) -> Result<Resolution, Denial> {
        self.resolve_for(ctx, &RESOLVE).await
    }

    /// Resolves `ctx` as [`Router::resolve`] does, for what `intent` says the credential will
    /// do: the gates ([`Gate`]) decide on it (a policy on the action, an approval bound to the
    /// exact call).
    ///
    /// ```
    /// # use identity_core::*;
    /// use identity_router::{Intent, Purpose, Router};
    /// # let store = identity_memory::MemoryCredentialStore::new();
    /// # store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?.with_secret(Secret::new("s")));
    /// # let router = Router::builder().default_store(store)
    /// #     .rule(RoutingRule::new("r1", "slot").with_priority(1)).build().unwrap();
    /// # let ctx = RequestContext::builder().user_id("u").resource_id("r").resource_kind(ResourceKind::Shared)
    /// #     .provider("p").model("m").action("read").trace_id("t").build().unwrap();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let intent = Intent::new(Purpose::Deliver).requested_by("exec");
    /// assert!(router.resolve_for(&ctx, &intent).await.is_ok());
    /// # });
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub async fn resolve_for(
        &self,
        ctx: &RequestContext,
        intent: &Intent,
    ) -> Result<Resolution, Denial> {
        // The clock is read only for an observer: the bare path stays as cheap as it can be.
        let started = self.settings.observer.is_some().then(Instant::now);
        // DEBUG: a span per resolution costs more than the audit event at INFO.
        let span = debug_span!("resolve", trace_id = %ctx.trace_id);
        let outcome = self.decide(ctx, intent).instrument(span).await;
        audit(ctx, &outcome);
        if let (Some(observer), Some(started)) = (&self.settings.observer, started) {
            observer.observe(ctx, outcome.as_ref(), started.elapsed());
        }
        outcome
    }

    async fn decide(&self, ctx: &RequestContext, intent: &Intent) -> Result<Resolution, Denial> {
        let mut fell_through = Vec::new();
        let mut after = None;
        loop {
            let Some(position) = self.first_match(ctx, after) else {
                return Err(match fell_through.pop() {
                    // Every matching rule was tried: report the last one, with the others.
                    Some((rule_id, reason)) => Denial {
                        reason,
                        rule_id: Some(rule_id),
                        arm: Arm::Primary,
                        fell_through,
                    },
                    None => Denial::no_matching_rule(),
                });
            };
            let rule = &self.rules[position];
            match self.check(rule, ctx).await {
                Checked::Granted(mut resolution) => {
                    let admission = Admission {
                        context: ctx,
                        intent,
                        rule: &rule.source,
                    };
                    for gate in &self.settings.gates {
                        if let Err(reason) = gate.admit(&admission, &mut resolution).await {
                            return Err(Denial {
                                reason,
                                rule_id: Some(rule.id.clone()),
                                arm: resolution.arm,
                                fell_through,
                            });
                        }
                    }
                    if resolution.approval_demanded().is_some() {
                        // Fail closed: nothing could see to the approval the call needs.
                        return Err(Denial {
                            reason: DenialReason::NotPermitted {
                                policies: Vec::new(),
                                detail: "the call needs approval, and no approvals are configured"
                                    .into(),
                            },
                            rule_id: Some(rule.id.clone()),
                            arm: resolution.arm,
                            fell_through,
                        });
                    }
                    return Ok(resolution);
                }
                Checked::Denied(reason, _)
                    if self.settings.fall_through && reason.is_unavailable() =>
                {
                    fell_through.push((rule.id.clone(), reason));
                    after = Some(position);
                }
                Checked::Denied(reason, arm) => {
                    return Err(Denial {
                        reason,
                        rule_id: Some(rule.id.clone()),
                        arm,
                        fell_through,
                    });
                }
            }
        }
    }

    /// The service `resolution`'s credential (resolved for `ctx`) was meant for refused it (an
    /// HTTP 401): the store that produced it forgets that secret, so that resolving again
    /// produces a fresh one (a token exchanged again, a user's token refreshed, a secret read
    /// again past the cache). A resolution without a secret, or of a rule no longer loaded,
    /// asks nothing.
    ///
    /// ```
    /// use identity_core::{Credential, CredentialKind, RequestContext, ResourceKind, RoutingRule, Secret};
    /// let store = identity_memory::MemoryCredentialStore::new();
    /// store.insert(Credential::new("c1", CredentialKind::Fixed, "slot")?.with_secret(Secret::new("s")));
    /// let router = identity_router::Router::builder().default_store(store)
    ///     .rule(RoutingRule::new("r1", "slot").with_priority(1)).build()?;
    /// let ctx = RequestContext::builder().user_id("u").resource_id("r")
    ///     .resource_kind(ResourceKind::Shared).provider("p").model("m")
    ///     .action("read").trace_id("t").build().unwrap();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let resolution = router.resolve(&ctx).await.unwrap();
    /// router.forget_refused(&resolution, &ctx).await.unwrap(); // the memory store keeps its secret
    /// assert!(router.resolve(&ctx).await.is_ok());
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn forget_refused(
        &self,
        resolution: &Resolution,
        ctx: &RequestContext,
    ) -> Result<(), identity_core::Error> {
        let Some(secret) = resolution.secret() else {
            return Ok(());
        };
        let Some(rule) = self.rules.iter().find(|rule| rule.id == resolution.rule_id) else {
            return Ok(());
        };
        let store = match (resolution.arm, &rule.canary) {
            (Arm::Canary, Some(canary)) => canary.store,
            _ => rule.store,
        };
        let (_, store) = &self.settings.stores[store];
        store
            .forget_refused(&resolution.credential_ref, ctx, secret)
            .await
    }

    /// Resolves both sides of a migration step, concurrently. Either side refused refuses the
    /// step, saying which side (or both).
    ///
    /// ```
    /// # use identity_core::*;
    /// let store = identity_memory::MemoryCredentialStore::new();
    /// store.insert(Credential::new("ro", CredentialKind::Fixed, "reader")?.with_scope("read"));
    /// let router = identity_router::Router::builder().default_store(store)
    ///     .rule(RoutingRule::new("reads", "reader").with_priority(1).with_match_action(["read"]))
    ///     .build().unwrap();
    /// let request = MigrationRequest::from_json(&serde_json::json!({
    ///     "migrationId": "m1", "phase": "load", "sourceResourceId": "old", "targetResourceId": "new",
    ///     "userId": "u", "provider": "p", "model": "m", "traceId": "t"})).unwrap();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let denial = router.resolve_pair(&request).await.unwrap_err();
    /// assert!(denial.source.is_none());
    /// assert_eq!(denial.target.unwrap().reason.code(), "no_matching_rule");
    /// # });
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub async fn resolve_pair(
        &self,
        request: &MigrationRequest,
    ) -> Result<ResolvedPair, PairDenial> {
        let source_ctx = request.source_context();
        let target_ctx = request.target_context();
        let (source, target) = futures::join!(self.resolve(&source_ctx), self.resolve(&target_ctx));
        match (source, target) {
            (Ok(source), Ok(target)) => {
                let expires_at = match (source.expires_at, target.expires_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Ok(ResolvedPair {
                    migration_id: request.migration_id.clone(),
                    phase: request.phase,
                    dry_run: request.dry_run,
                    source,
                    target,
                    expires_at,
                })
            }
            (source, target) => Err(PairDenial {
                source: source.err(),
                target: target.err(),
            }),
        }
    }

    /// Every rule in the order the router considers them, with the fields of `ctx` that do
    /// not hold: which rule would decide, without resolving (no store is asked, no gate
    /// counts or holds anything). The first that matched decides, unless its store or a gate
    /// refuses.
    ///
    /// ```
    /// # use identity_core::*;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new())
    ///     .rule(RoutingRule::new("anthropic", "a").with_priority(9).with_match_provider("anthropic"))
    ///     .rule(RoutingRule::new("any", "b").with_priority(1))
    ///     .build().unwrap();
    /// let ctx = RequestContext::builder().user_id("u").resource_id("r")
    ///     .resource_kind(ResourceKind::Shared).provider("openai").model("m")
    ///     .action("read").trace_id("t").build().unwrap();
    /// let verdicts = router.verdicts(&ctx);
    /// assert!(!verdicts[0].matched);
    /// assert_eq!(&*verdicts[1].rule_id, "any");
    /// assert!(verdicts[1].matched);
    /// ```
    #[must_use]
    pub fn verdicts(&self, ctx: &RequestContext) -> Vec<RuleVerdict> {
        self.rules
            .iter()
            .map(|rule| {
                let mismatches = rule.mismatches(ctx);
                RuleVerdict {
                    rule_id: rule.id.clone(),
                    priority: rule.priority,
                    matched: mismatches.is_empty(),
                    mismatches,
                }
            })
            .collect()
    }

    /// Explains how `ctx` resolves: every rule in order with the fields that do not hold, and
    /// the outcome of the resolution (which asks the stores, and emits its audit event).
    ///
    /// ```
    /// # use identity_core::*;
    /// let router = identity_router::Router::builder()
    ///     .default_store(identity_memory::MemoryCredentialStore::new())
    ///     .rule(RoutingRule::new("anthropic", "a").with_priority(9).with_match_provider("anthropic"))
    ///     .rule(RoutingRule::new("any", "b").with_priority(1))
    ///     .build().unwrap();
    /// let ctx = RequestContext::builder().user_id("u").resource_id("r")
    ///     .resource_kind(ResourceKind::Shared).provider("openai").model("m")
    ///     .action("read").trace_id("t").build().unwrap();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let explanation = router.explain(&ctx).await;
    /// assert_eq!(explanation.rules[0].mismatches[0].field, "matchProvider");
    /// assert_eq!(explanation.decided_by(), Some("any"));
    /// # });
    /// ```
    pub async fn explain(&self, ctx: &RequestContext) -> Explanation {
        let rules = self.verdicts(ctx);
        let outcome = match self.resolve(ctx).await {
            Ok(resolution) => ExplainedOutcome::Granted {
                notes: resolution.notes().to_vec(),
                rule_id: resolution.rule_id,
                arm: resolution.arm,
                credential_id: resolution.credential_id,
                resolved_for: resolution.resolved_for,
                expires_at: resolution.expires_at,
            },
            Err(denial) => ExplainedOutcome::Denied(denial),
        };
        Explanation { rules, outcome }
    }
}
