//! [`Policies`]: Cedar policies, read from their sources, named, checked against a schema, and
//! asked about one [`Query`] at a time.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Decision as CedarDecision, Policy, PolicyId, PolicySet, Schema, ValidationMode,
    Validator,
};
use identity_core::ApprovalRequirement;

use crate::plan::{Entry, Planner};
use crate::query::Query;

/// The schema used when the configuration names none: the entities, actions and facts
/// agent-identity asks about (in `src/schema.cedarschema`).
///
/// ```
/// assert!(identity_policy::DEFAULT_SCHEMA.contains(r#"action "call-tool""#));
/// ```
pub const DEFAULT_SCHEMA: &str = include_str!("schema.cedarschema");

/// The text of one policy file, and the name errors and policy ids give it.
///
/// ```
/// let source = identity_policy::PolicySource::new("agents.cedar", "permit(principal, action, resource);");
/// assert_eq!(source.name, "agents.cedar");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicySource {
    /// Where the text comes from (a file's path).
    pub name: String,
    /// The policies, in Cedar's syntax.
    pub text: String,
}

impl PolicySource {
    /// Names `text` as `name`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// One thing wrong with the policies or their schema: where, and what.
///
/// ```
/// use identity_policy::{Policies, PolicySource};
/// let err = Policies::new(&[PolicySource::new("a.cedar", "permit(principal, action, resource);\nforbid(principal, act, resource);")], None)
///     .unwrap_err();
/// assert!(err.problems[0].to_string().starts_with("a.cedar:2:"), "{}", err.problems[0]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyProblem {
    /// A file with line and column, a policy's id, or `schema`.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Policies that cannot be used: every problem found, each with its place.
///
/// ```
/// let err = identity_policy::Policies::new(
///     &[identity_policy::PolicySource::new("a.cedar", "permit(principal, action, resource")], None,
/// ).unwrap_err();
/// assert!(err.to_string().starts_with("invalid policies: a.cedar:1:"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policies: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
#[non_exhaustive]
pub struct PolicyError {
    /// Every problem found.
    pub problems: Vec<PolicyProblem>,
}

/// What the policies decide of one [`Query`], and why.
///
/// ```
/// # use identity_policy::*;
/// let policies = Policies::new(&[PolicySource::new("p.cedar",
///     r#"@id("agents-read") permit(principal, action == Action::"resolve", resource);"#)], None)?;
/// let query = Query::new("resolve", ResourceRef::credential("c1")).user("alice");
/// let decision = policies.authorize(&query, true);
/// assert!(decision.allowed);
/// assert_eq!(decision.policies, ["agents-read"]);
/// # Ok::<(), PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether the call may go on.
    pub allowed: bool,
    /// The policies that decided: the permitting ones, or the forbidding ones (empty when no
    /// policy applied).
    pub policies: Vec<String>,
    /// Policies that could not be evaluated, with why. Any error refuses: policies fail closed.
    pub errors: Vec<String>,
    /// The approval the permitting policies demand, if any.
    pub approval: Option<ApprovalRequirement>,
}

impl Decision {
    /// One sentence for people on why.
    ///
    /// ```
    /// # use identity_policy::*;
    /// let policies = Policies::new(&[], None)?;
    /// let decision = policies.authorize(&Query::new("resolve", ResourceRef::credential("c")).user("u"), true);
    /// assert_eq!(decision.explain(), "no policy permits it");
    /// # Ok::<(), PolicyError>(())
    /// ```
    pub fn explain(&self) -> String {
        let named = |policies: &[String]| format!("`{}`", policies.join("`, `"));
        if !self.errors.is_empty() {
            return format!(
                "a policy could not be evaluated, so the call is refused: {}",
                self.errors.join("; ")
            );
        }
        match (self.allowed, self.policies.is_empty()) {
            (true, true) => "no policy applies; the rule needs none".into(),
            (true, false) => format!("permitted by {}", named(&self.policies)),
            (false, true) => "no policy permits it".into(),
            (false, false) => format!("forbidden by {}", named(&self.policies)),
        }
    }
}

/// A set of Cedar policies, checked against a schema when loaded.
///
/// Each policy is named by its `@id("...")` annotation, or else by its file and position
/// (`agents.cedar#2`). A permit policy annotated `@approval("required")` demands that the calls
/// it permits be approved first; `@approvers("alice, bob, carol")`, `@required_approvers("2")`,
/// `@break_glass("allowed")` and `@approval_ttl_secs("600")` shape the demand.
///
/// ```
/// # use identity_policy::*;
/// let policies = Policies::new(&[PolicySource::new("p.cedar", r#"
///     @id("payments-need-two")
///     @approval("required") @approvers("alice, bob, carol") @required_approvers("2")
///     permit(principal, action == Action::"proxy", resource == Upstream::"payments");
/// "#)], None)?;
/// let decision = policies.authorize(&Query::new("proxy", ResourceRef::upstream("payments")).user("u"), true);
/// assert_eq!(decision.approval.unwrap().required, 2);
/// # Ok::<(), PolicyError>(())
/// ```
#[derive(Debug)]
pub struct Policies {
    planner: Planner,
    approvals: HashMap<PolicyId, ApprovalRequirement>,
    authorizer: Authorizer,
}

impl Policies {
    /// Reads `sources` and checks them against `schema` (Cedar's schema syntax), or against
    /// [`DEFAULT_SCHEMA`] when `None`. Every problem is reported, each with its file and line or
    /// its policy.
    pub fn new(sources: &[PolicySource], schema: Option<&str>) -> Result<Self, PolicyError> {
        let mut problems = Vec::new();
        let schema = match Schema::from_cedarschema_str(schema.unwrap_or(DEFAULT_SCHEMA)) {
            Ok((schema, _warnings)) => Some(schema),
            Err(err) => {
                problems.push(PolicyProblem {
                    place: "schema".into(),
                    message: diagnostic_text(&err),
                });
                None
            }
        };
        let mut set = PolicySet::new();
        let mut approvals = HashMap::new();
        for source in sources {
            let parsed = match PolicySet::from_str(&source.text) {
                Ok(parsed) => parsed,
                Err(errors) => {
                    problems.extend(errors.iter().map(|err| PolicyProblem {
                        place: place_of(&source.name, &source.text, err),
                        message: err.to_string(),
                    }));
                    continue;
                }
            };
            let mut policies: Vec<&Policy> = parsed.policies().collect();
            // Cedar numbers a file's policies `policy0`, `policy1`, ... in order; the position
            // names a policy without an `@id`.
            policies.sort_by_key(|policy| {
                policy
                    .id()
                    .to_string()
                    .trim_start_matches("policy")
                    .parse::<usize>()
                    .unwrap_or(usize::MAX)
            });
            for (index, policy) in policies.into_iter().enumerate() {
                let name = policy
                    .annotation("id")
                    .map_or_else(|| format!("{}#{index}", source.name), str::to_owned);
                let id = PolicyId::new(&name);
                let policy = policy.new_id(id.clone());
                match approval_of(&policy) {
                    Ok(Some(demand)) => {
                        approvals.insert(id.clone(), demand);
                    }
                    Ok(None) => {}
                    Err(message) => problems.push(PolicyProblem {
                        place: format!("policy `{name}` in {}", source.name),
                        message,
                    }),
                }
                if set.add(policy).is_err() {
                    problems.push(PolicyProblem {
                        place: format!("policy `{name}` in {}", source.name),
                        message: "another policy has the same id".into(),
                    });
                }
            }
        }
        if let Some(schema) = &schema {
            let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            problems.extend(validation.validation_errors().map(|err| PolicyProblem {
                place: format!("policy `{}`", err.policy_id()),
                message: diagnostic_text(err),
            }));
        }
        if !problems.is_empty() {
            return Err(PolicyError { problems });
        }
        Ok(Self {
            planner: Planner::new(set.policies().cloned().map(Entry::new).collect()),
            approvals,
            authorizer: Authorizer::new(),
        })
    }

    /// How many policies there are.
    ///
    /// ```
    /// assert_eq!(identity_policy::Policies::new(&[], None).unwrap().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.planner.entries().len()
    }

    /// True when there is no policy.
    ///
    /// ```
    /// assert!(identity_policy::Policies::new(&[], None).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.planner.entries().is_empty()
    }

    /// Whether a policy demands approval (`@approval`).
    ///
    /// ```
    /// # use identity_policy::*;
    /// let policies = Policies::new(&[PolicySource::new("p",
    ///     r#"@approval("required") permit(principal, action, resource);"#)], None)?;
    /// assert!(policies.demands_approval());
    /// # Ok::<(), PolicyError>(())
    /// ```
    pub fn demands_approval(&self) -> bool {
        !self.approvals.is_empty()
    }

    /// Decides `query`. A policy that forbids it refuses it; so does any policy that cannot be
    /// evaluated (policies fail closed). Otherwise a permitting policy allows it; when none
    /// applies, `permit_required` decides.
    pub fn authorize(&self, query: &Query, permit_required: bool) -> Decision {
        let refused = |message: String| Decision {
            allowed: false,
            policies: Vec::new(),
            errors: vec![message],
            approval: None,
        };
        let (principal, ancestor) = match (&query.user, &query.workload) {
            (Some(user), workload) => (
                ("User", user.as_str()),
                workload.as_deref().map(|workload| ("Workload", workload)),
            ),
            (None, Some(workload)) => (("Workload", workload.as_str()), None),
            (None, None) => {
                return refused("the check names neither a user nor a workload".into());
            }
        };
        let resource = (
            query.resource.kind.entity_type(),
            query.resource.id.as_str(),
        );
        let Some(plan) = self
            .planner
            .plan(principal, ancestor, &query.action, resource)
        else {
            // No policy's scope holds: none applies.
            return Decision {
                allowed: !permit_required,
                policies: Vec::new(),
                errors: Vec::new(),
                approval: None,
            };
        };
        let uids = match query.uids() {
            Ok(uids) => uids,
            Err(message) => return refused(message),
        };
        let (request, entities) = match query.to_cedar(uids, &plan.reads, plan.needs_ancestry) {
            Ok(parts) => parts,
            Err(message) => return refused(message),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &plan.set, &entities);
        let diagnostics = response.diagnostics();
        let errors: Vec<String> = diagnostics.errors().map(diagnostic_text).collect();
        let mut decided: Vec<&PolicyId> = diagnostics.reason().collect();
        decided.sort_unstable_by_key(|id| id.to_string());
        let policies = decided.iter().map(ToString::to_string).collect();
        if !errors.is_empty() {
            return Decision {
                allowed: false,
                policies,
                errors,
                approval: None,
            };
        }
        match response.decision() {
            CedarDecision::Allow => Decision {
                allowed: true,
                approval: decided
                    .iter()
                    .filter_map(|id| self.approvals.get(*id))
                    .fold(None, |joined: Option<ApprovalRequirement>, demand| {
                        Some(joined.map_or_else(|| demand.clone(), |j| j.stricter(demand)))
                    }),
                policies,
                errors,
            },
            CedarDecision::Deny => Decision {
                allowed: decided.is_empty() && !permit_required,
                policies,
                errors,
                approval: None,
            },
        }
    }
}

/// The approval a policy's annotations demand, or why they are wrong.
fn approval_of(policy: &Policy) -> Result<Option<ApprovalRequirement>, String> {
    const SHAPING: [&str; 4] = [
        "approvers",
        "required_approvers",
        "break_glass",
        "approval_ttl_secs",
    ];
    let Some(approval) = policy.annotation("approval") else {
        return match SHAPING.iter().find(|key| policy.annotation(key).is_some()) {
            Some(key) => Err(format!("`@{key}` needs `@approval(\"required\")`")),
            None => Ok(None),
        };
    };
    if approval != "required" {
        return Err(format!(
            "`@approval` must be \"required\", not {approval:?}"
        ));
    }
    if policy.effect() != cedar_policy::Effect::Permit {
        return Err("`@approval` belongs on a permit policy".into());
    }
    let mut demand = ApprovalRequirement::default();
    if let Some(names) = policy.annotation("approvers") {
        demand.approvers = names
            .split([',', ' '])
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(required) = policy.annotation("required_approvers") {
        demand.required = required
            .parse()
            .map_err(|_| format!("`@required_approvers` must be a count, not {required:?}"))?;
    }
    if let Some(allowed) = policy.annotation("break_glass") {
        demand.break_glass = match allowed {
            "allowed" => true,
            "denied" => false,
            other => {
                return Err(format!(
                    "`@break_glass` must be \"allowed\" or \"denied\", not {other:?}"
                ));
            }
        };
    }
    if let Some(ttl) = policy.annotation("approval_ttl_secs") {
        demand.ttl_secs = ttl
            .parse()
            .map_err(|_| format!("`@approval_ttl_secs` must be seconds, not {ttl:?}"))?;
    }
    match demand.problem() {
        Some(problem) => Err(problem),
        None => Ok(Some(demand)),
    }
}

/// An error's message with its causes' (Cedar puts the useful part in a help text at times).
fn diagnostic_text(err: &(impl miette::Diagnostic + fmt::Display + ?Sized)) -> String {
    match err.help() {
        Some(help) => format!("{err} ({help})"),
        None => err.to_string(),
    }
}

/// `file:line:column` of a parse error's first label, or the file alone.
fn place_of(name: &str, text: &str, err: &(impl miette::Diagnostic + ?Sized)) -> String {
    let Some(offset) = err
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
    else {
        return name.to_owned();
    };
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{name}:{line}:{column}")
}
