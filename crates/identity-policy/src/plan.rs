//! Which policies a check must evaluate, and what they read.
//!
//! Cedar evaluates every policy of the set it is given, at about a microsecond each, and
//! building a request's context costs about as much per fact. A check here first keeps the
//! policies whose scope (`principal`, `action`, `resource`) holds for it, which is exact since
//! the check makes the entities itself (a user's only ancestor is its workload; resources and
//! actions have none), then gives Cedar only those, with only the facts they read. What Cedar
//! decides is the same as over the whole set: a policy whose scope does not hold never applies
//! and is never evaluated.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicySet, PrincipalConstraint, ResourceConstraint,
};

/// How many policy subsets are kept ready; past it they are built again as checks need them.
const PLANS_KEPT: usize = 4096;

/// The facts a policy reads from `context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reads {
    /// These, by name.
    Some(BTreeSet<String>),
    /// The context as a whole (compared, or read by a computed name): every fact.
    All,
}

impl Reads {
    pub(crate) fn includes(&self, fact: &str) -> bool {
        match self {
            Self::Some(names) => names.contains(fact),
            Self::All => true,
        }
    }

    fn join(&mut self, other: &Self) {
        match (&mut *self, other) {
            (Self::All, _) => {}
            (_, Self::All) => *self = Self::All,
            (Self::Some(mine), Self::Some(theirs)) => mine.extend(theirs.iter().cloned()),
        }
    }
}

/// An entity as a check names it: its type's name and its id.
pub(crate) type Named<'a> = (&'a str, &'a str);

/// A scope constraint, with its entities as text: compared with a check's own names, which is
/// cheaper than Cedar's entity ids.
#[derive(Debug)]
enum Scope {
    Any,
    Eq(String, String),
    In(String, String),
    Is(String),
    IsIn(String, String, String),
    /// An action among these ids.
    AmongActions(Vec<String>),
}

fn named(uid: &EntityUid) -> (String, String) {
    (uid.type_name().to_string(), uid.id().unescaped().to_owned())
}

impl Scope {
    fn of_principal(constraint: PrincipalConstraint) -> Self {
        match constraint {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Eq(uid) => {
                let (kind, id) = named(&uid);
                Self::Eq(kind, id)
            }
            PrincipalConstraint::In(uid) => {
                let (kind, id) = named(&uid);
                Self::In(kind, id)
            }
            PrincipalConstraint::Is(kind) => Self::Is(kind.to_string()),
            PrincipalConstraint::IsIn(kind, uid) => {
                let (of, id) = named(&uid);
                Self::IsIn(kind.to_string(), of, id)
            }
        }
    }

    fn of_resource(constraint: ResourceConstraint) -> Self {
        match constraint {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Eq(uid) => {
                let (kind, id) = named(&uid);
                Self::Eq(kind, id)
            }
            ResourceConstraint::In(uid) => {
                let (kind, id) = named(&uid);
                Self::In(kind, id)
            }
            ResourceConstraint::Is(kind) => Self::Is(kind.to_string()),
            ResourceConstraint::IsIn(kind, uid) => {
                let (of, id) = named(&uid);
                Self::IsIn(kind.to_string(), of, id)
            }
        }
    }

    fn of_action(constraint: ActionConstraint) -> Self {
        match constraint {
            ActionConstraint::Any => Self::Any,
            ActionConstraint::Eq(uid) => Self::AmongActions(vec![uid.id().unescaped().to_owned()]),
            ActionConstraint::In(uids) => Self::AmongActions(
                uids.iter()
                    .map(|uid| uid.id().unescaped().to_owned())
                    .collect(),
            ),
        }
    }

    /// Whether the constraint holds for `entity`, whose one ancestor (if any) is `ancestor`.
    fn holds(&self, entity: Named<'_>, ancestor: Option<Named<'_>>) -> bool {
        let is = |kind: &str, id: &str| entity == (kind, id);
        let within = |kind: &str, id: &str| is(kind, id) || ancestor == Some((kind, id));
        match self {
            Self::Any => true,
            Self::Eq(kind, id) => is(kind, id),
            Self::In(kind, id) => within(kind, id),
            Self::Is(kind) => entity.0 == kind,
            Self::IsIn(kind, of, id) => entity.0 == kind && within(of, id),
            Self::AmongActions(ids) => ids.iter().any(|id| id == entity.1),
        }
    }
}

/// One policy, with what is known of it before any check.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) policy: Policy,
    principal: Scope,
    action: Scope,
    resource: Scope,
    reads: Reads,
    /// Whether it needs the user's workload as an entity (an `in` anywhere).
    needs_ancestry: bool,
}

impl Entry {
    pub(crate) fn new(policy: Policy) -> Self {
        let (reads, needs_ancestry) = match policy.to_json() {
            Ok(json) => {
                let mut reads = Reads::Some(BTreeSet::new());
                let mut ancestry = matches!(
                    policy.principal_constraint(),
                    PrincipalConstraint::In(_) | PrincipalConstraint::IsIn(..)
                );
                if let Some(conditions) = json.get("conditions") {
                    walk(conditions, &mut reads, &mut ancestry);
                }
                (reads, ancestry)
            }
            // A policy that cannot be read as JSON is given everything.
            Err(_) => (Reads::All, true),
        };
        Self {
            principal: Scope::of_principal(policy.principal_constraint()),
            action: Scope::of_action(policy.action_constraint()),
            resource: Scope::of_resource(policy.resource_constraint()),
            policy,
            reads,
            needs_ancestry,
        }
    }

    /// Whether the policy's scope holds for a check of `action` on `resource` by `principal`,
    /// whose one ancestor (if any) is `ancestor`. Resources and actions have no ancestors.
    fn applies(
        &self,
        principal: Named<'_>,
        ancestor: Option<Named<'_>>,
        action: &str,
        resource: Named<'_>,
    ) -> bool {
        self.action.holds(("Action", action), None)
            && self.resource.holds(resource, None)
            && self.principal.holds(principal, ancestor)
    }
}

/// What Cedar is given for one subset of the policies.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) set: PolicySet,
    pub(crate) reads: Reads,
    pub(crate) needs_ancestry: bool,
}

/// The policies, and the subsets checks have needed.
#[derive(Debug)]
pub(crate) struct Planner {
    entries: Vec<Entry>,
    plans: Mutex<HashMap<Vec<u32>, Arc<Plan>>>,
}

impl Planner {
    pub(crate) fn new(entries: Vec<Entry>) -> Self {
        Self {
            entries,
            plans: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The plan for a check, or `None` when no policy's scope holds for it.
    pub(crate) fn plan(
        &self,
        principal: Named<'_>,
        ancestor: Option<Named<'_>>,
        action: &str,
        resource: Named<'_>,
    ) -> Option<Arc<Plan>> {
        let chosen: Vec<u32> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.applies(principal, ancestor, action, resource))
            .filter_map(|(index, _)| u32::try_from(index).ok())
            .collect();
        if chosen.is_empty() {
            return None;
        }
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(plan) = plans.get(&chosen) {
            return Some(plan.clone());
        }
        let plan = Arc::new(self.build(&chosen));
        if plans.len() >= PLANS_KEPT {
            plans.clear();
        }
        plans.insert(chosen, plan.clone());
        Some(plan)
    }

    fn build(&self, chosen: &[u32]) -> Plan {
        let mut set = PolicySet::new();
        let mut reads = Reads::Some(BTreeSet::new());
        let mut needs_ancestry = false;
        for &index in chosen {
            let Some(entry) = self.entries.get(index as usize) else {
                continue;
            };
            // The ids are unique in the whole set, so in any part of it.
            let _ = set.add(entry.policy.clone());
            reads.join(&entry.reads);
            needs_ancestry |= entry.needs_ancestry;
        }
        Plan {
            set,
            reads,
            needs_ancestry,
        }
    }
}

/// Notes, in a condition's JSON form, the facts read from `context` and whether `in` is used.
fn walk(value: &serde_json::Value, reads: &mut Reads, ancestry: &mut bool) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                match key.as_str() {
                    "in" => *ancestry = true,
                    "." | "has" => {
                        let on_context = inner.get("left").is_some_and(is_context);
                        if let (true, Some(attr), Reads::Some(names)) = (
                            on_context,
                            inner.get("attr").and_then(|a| a.as_str()),
                            &mut *reads,
                        ) {
                            names.insert(attr.to_owned());
                            continue;
                        }
                    }
                    _ => {}
                }
                if is_context(value) {
                    *reads = Reads::All;
                }
                walk(inner, reads, ancestry);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                walk(item, reads, ancestry);
            }
        }
        _ => {}
    }
}

fn is_context(value: &serde_json::Value) -> bool {
    value.get("Var").and_then(|v| v.as_str()) == Some("context")
}
