//! Rules checked and compiled for matching.

use std::collections::HashMap;
use std::sync::Arc;

use identity_core::{
    ApprovalRequirement, ConfigError, CredentialKind, CredentialRef, Delivery, MigrationPhase,
    OneOrMany, RequestContext, ResourceKind, RoutingRule,
};

use crate::canary::CompiledCanary;
use crate::glob::Glob;

/// A rule that passed every check, in the form matching uses.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) id: Arc<str>,
    pub(crate) priority: i64,
    pub(crate) credential_ref: CredentialRef,
    pub(crate) credential_kind: Option<CredentialKind>,
    /// Index of the rule's store in the router's store list.
    pub(crate) store: usize,
    pub(crate) read_only: bool,
    pub(crate) delivery: Delivery,
    pub(crate) resource_kind: Option<ResourceKind>,
    pub(crate) actions: Option<Box<[Box<str>]>>,
    pub(crate) provider: Option<Box<str>>,
    pub(crate) user_id: Option<Box<str>>,
    pub(crate) phases: Option<Box<[MigrationPhase]>>,
    pub(crate) spiffe_id: Option<Box<str>>,
    pub(crate) resource_id: Option<Glob>,
    pub(crate) model: Option<Glob>,
    /// The rule's canary, when it has one.
    pub(crate) canary: Option<CompiledCanary>,
    /// The rule as configured, for explanations.
    pub(crate) source: RoutingRule,
}

/// One `match*` field of a rule that does not hold for a context.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// The rule's field, in the configuration's spelling (`matchProvider`).
    pub field: &'static str,
    /// What the rule asks for, as configured.
    pub expected: String,
    /// What the context has; `None` when the context does not have the field at all.
    pub actual: Option<String>,
}

impl CompiledRule {
    /// True when every `match*` field holds for `ctx`. The cheapest and most selective checks
    /// come first.
    pub(crate) fn matches(&self, ctx: &RequestContext) -> bool {
        self.user_id.as_deref().is_none_or(|v| v == ctx.user_id)
            && self.resource_kind.is_none_or(|v| v == ctx.resource_kind)
            && self.provider.as_deref().is_none_or(|v| v == ctx.provider)
            && self
                .actions
                .as_deref()
                .is_none_or(|vs| vs.iter().any(|v| **v == *ctx.action))
            && self
                .phases
                .as_deref()
                .is_none_or(|vs| ctx.phase.is_some_and(|p| vs.contains(&p)))
            && self
                .spiffe_id
                .as_deref()
                .is_none_or(|v| ctx.spiffe_id.as_deref() == Some(v))
            && self
                .resource_id
                .as_ref()
                .is_none_or(|g| g.matches(&ctx.resource_id))
            && self.model.as_ref().is_none_or(|g| g.matches(&ctx.model))
    }

    /// Every `match*` field that does not hold for `ctx`, for explanations.
    pub(crate) fn mismatches(&self, ctx: &RequestContext) -> Vec<Mismatch> {
        let rule = &self.source;
        let mut out = Vec::new();
        let mut check = |field, expected: Option<String>, actual: Option<&str>, holds: bool| {
            if let (Some(expected), false) = (expected, holds) {
                out.push(Mismatch {
                    field,
                    expected,
                    actual: actual.map(str::to_owned),
                });
            }
        };
        let list =
            |values: &Option<OneOrMany<String>>| values.as_ref().map(|v| v.as_slice().join(", "));
        check(
            "matchUserId",
            rule.match_user_id.clone(),
            Some(&ctx.user_id),
            self.user_id.as_deref().is_none_or(|v| v == ctx.user_id),
        );
        check(
            "matchResourceKind",
            rule.match_resource_kind.map(|k| k.to_string()),
            Some(ctx.resource_kind.as_str()),
            self.resource_kind.is_none_or(|v| v == ctx.resource_kind),
        );
        check(
            "matchProvider",
            rule.match_provider.clone(),
            Some(&ctx.provider),
            self.provider.as_deref().is_none_or(|v| v == ctx.provider),
        );
        check(
            "matchAction",
            list(&rule.match_action),
            Some(&ctx.action),
            self.actions
                .as_deref()
                .is_none_or(|vs| vs.iter().any(|v| **v == *ctx.action)),
        );
        check(
            "matchPhase",
            rule.match_phase.as_ref().map(|p| {
                p.as_slice()
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            ctx.phase.map(MigrationPhase::as_str),
            self.phases
                .as_deref()
                .is_none_or(|vs| ctx.phase.is_some_and(|p| vs.contains(&p))),
        );
        check(
            "matchSpiffeId",
            rule.match_spiffe_id.clone(),
            ctx.spiffe_id.as_deref(),
            self.spiffe_id
                .as_deref()
                .is_none_or(|v| ctx.spiffe_id.as_deref() == Some(v)),
        );
        check(
            "matchResourceId",
            rule.match_resource_id.clone(),
            Some(&ctx.resource_id),
            self.resource_id
                .as_ref()
                .is_none_or(|g| g.matches(&ctx.resource_id)),
        );
        check(
            "matchModel",
            rule.match_model.clone(),
            Some(&ctx.model),
            self.model.as_ref().is_none_or(|g| g.matches(&ctx.model)),
        );
        out
    }
}

/// Checks every rule and compiles those that pass, sorted by priority (higher first, ties in
/// declaration order). Every problem of every rule is reported, not only the first.
pub(crate) fn compile(
    rules: Vec<RoutingRule>,
    stores: &HashMap<String, usize>,
    default_store: Option<usize>,
) -> Result<Vec<CompiledRule>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut compiled = Vec::with_capacity(rules.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, rule) in rules.into_iter().enumerate() {
        let location = if rule.id.trim().is_empty() {
            format!("rules[{index}]")
        } else {
            format!("rule `{}`", rule.id)
        };
        let mut problem = |field: Option<&str>, text: String| {
            errors.push(ConfigError::new(&location, field, text));
        };
        if rule.id.trim().is_empty() {
            problem(Some("id"), "is empty".into());
        } else if let Some(first) = seen.insert(rule.id.clone(), index) {
            problem(
                Some("id"),
                format!("is used by rules[{first}] and rules[{index}]; rule ids must be unique"),
            );
        }
        let credential_ref = CredentialRef::new(rule.credential_ref.clone())
            .map_err(|err| problem(Some("credentialRef"), describe(err)))
            .ok();
        if rule.priority.is_none() {
            problem(
                Some("priority"),
                "is missing; every rule needs one (higher wins)".into(),
            );
        }
        let store = match &rule.store {
            Some(name) => match stores.get(name) {
                Some(&store) => Some(store),
                None => {
                    let mut known: Vec<&str> = stores.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    problem(
                        Some("store"),
                        format!(
                            "names store `{name}`, which is not configured (configured: {})",
                            known.join(", ")
                        ),
                    );
                    None
                }
            },
            None => {
                if default_store.is_none() {
                    problem(
                        Some("store"),
                        "is absent and the router has no default store".into(),
                    );
                }
                default_store
            }
        };
        let mut text = |field: &str, value: &Option<String>| -> Option<Box<str>> {
            let value = value.as_deref()?;
            if value.trim().is_empty() {
                problem(
                    Some(field),
                    "is empty; remove the field to match anything".into(),
                );
                return None;
            }
            Some(value.into())
        };
        let provider = text("matchProvider", &rule.match_provider);
        let user_id = text("matchUserId", &rule.match_user_id);
        let spiffe_id = text("matchSpiffeId", &rule.match_spiffe_id);
        let resource_id_text = text("matchResourceId", &rule.match_resource_id);
        let model_text = text("matchModel", &rule.match_model);
        let mut glob = |field: &str, value: Option<Box<str>>| {
            value.and_then(|v| Glob::new(&v).map_err(|err| problem(Some(field), err)).ok())
        };
        let resource_id = glob("matchResourceId", resource_id_text);
        let model = glob("matchModel", model_text);
        let actions = match &rule.match_action {
            None => None,
            Some(list) if list.as_slice().is_empty() => {
                problem(
                    Some("matchAction"),
                    "is an empty list, which would match nothing; remove it to match any action"
                        .into(),
                );
                None
            }
            Some(list) if list.as_slice().iter().any(|a| a.trim().is_empty()) => {
                problem(Some("matchAction"), "contains an empty action".into());
                None
            }
            Some(list) => {
                let mut actions: Vec<Box<str>> =
                    list.as_slice().iter().map(|a| a.as_str().into()).collect();
                actions.sort_unstable();
                actions.dedup();
                Some(actions.into_boxed_slice())
            }
        };
        if let Some(text) = rule
            .require_approval
            .as_ref()
            .and_then(ApprovalRequirement::problem)
        {
            problem(Some("requireApproval"), text);
        }
        let phases = match &rule.match_phase {
            None => None,
            Some(list) if list.as_slice().is_empty() => {
                problem(
                    Some("matchPhase"),
                    "is an empty list, which would match nothing; remove it to match any phase"
                        .into(),
                );
                None
            }
            Some(list) => {
                let mut phases = list.as_slice().to_vec();
                phases.sort_unstable();
                phases.dedup();
                Some(phases.into_boxed_slice())
            }
        };
        let canary = rule.canary.as_ref().and_then(|canary| {
            let canary_ref = CredentialRef::new(canary.credential_ref.clone())
                .map_err(|err| problem(Some("canary.credentialRef"), describe(err)))
                .ok();
            let canary_store = match &canary.store {
                Some(name) => match stores.get(name) {
                    Some(&index) => Some(index),
                    None => {
                        problem(
                            Some("canary.store"),
                            format!("names store `{name}`, which is not configured"),
                        );
                        None
                    }
                },
                None => store,
            };
            let (canary_ref, canary_store) = (canary_ref?, canary_store?);
            if Some(&canary_ref) == credential_ref.as_ref() && Some(canary_store) == store {
                problem(
                    Some("canary.credentialRef"),
                    "names the rule's own credential in the same store; a canary needs another"
                        .into(),
                );
                return None;
            }
            Some(CompiledCanary {
                credential_ref: canary_ref,
                store: canary_store,
                weight: canary.weight,
                stick_to: canary.stick_to,
                fall_back: canary.fall_back,
            })
        });
        // A canary with a problem (reported above) leaves the rule uncompiled.
        let canary_checked = rule.canary.is_none() || canary.is_some();
        if let (Some(credential_ref), Some(priority), Some(store), true) =
            (credential_ref, rule.priority, store, canary_checked)
        {
            compiled.push(CompiledRule {
                id: rule.id.as_str().into(),
                priority,
                credential_ref,
                credential_kind: rule.credential_kind,
                store,
                read_only: rule.read_only,
                delivery: rule.delivery,
                resource_kind: rule.match_resource_kind,
                actions,
                provider,
                user_id,
                phases,
                spiffe_id,
                resource_id,
                model,
                canary,
                source: rule,
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // A stable sort keeps declaration order among equal priorities.
    compiled.sort_by_key(|rule| std::cmp::Reverse(rule.priority));
    Ok(compiled)
}

fn describe(err: identity_core::Error) -> String {
    match err {
        identity_core::Error::InvalidArgument { problem, .. } => problem,
        other => other.to_string(),
    }
}
