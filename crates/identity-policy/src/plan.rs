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

/// One policy, with what is known of it before any check.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) policy: Policy,
    principal: PrincipalConstraint,
    action: ActionConstraint,
    resource: ResourceConstraint,
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
            principal: policy.principal_constraint(),
            action: policy.action_constraint(),
            resource: policy.resource_constraint(),
            policy,
            reads,
            needs_ancestry,
        }
    }

    /// Whether the policy's scope holds for a check of `action` on `resource` by `principal`,
    /// whose ancestors are `ancestors`.
    fn applies(
        &self,
        principal: &EntityUid,
        ancestors: Option<&EntityUid>,
        action: &EntityUid,
        resource: &EntityUid,
    ) -> bool {
        let within = |uid: &EntityUid| uid == principal || ancestors == Some(uid);
        let principal_holds = match &self.principal {
            PrincipalConstraint::Any => true,
            PrincipalConstraint::Eq(uid) => uid == principal,
            PrincipalConstraint::In(uid) => within(uid),
            PrincipalConstraint::Is(kind) => kind == principal.type_name(),
            PrincipalConstraint::IsIn(kind, uid) => kind == principal.type_name() && within(uid),
        };
        let action_holds = match &self.action {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(uid) => uid == action,
            ActionConstraint::In(uids) => uids.contains(action),
        };
        let resource_holds = match &self.resource {
            ResourceConstraint::Any => true,
            ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => uid == resource,
            ResourceConstraint::Is(kind) => kind == resource.type_name(),
            ResourceConstraint::IsIn(kind, uid) => kind == resource.type_name() && uid == resource,
        };
        principal_holds && action_holds && resource_holds
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
        principal: &EntityUid,
        ancestors: Option<&EntityUid>,
        action: &EntityUid,
        resource: &EntityUid,
    ) -> Option<Arc<Plan>> {
        let chosen: Vec<u32> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.applies(principal, ancestors, action, resource))
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
