//! [`Query`]: one permission check, as the policies see it.

use std::collections::HashSet;
use std::sync::LazyLock;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
};
use identity_core::OffsetDateTime;
use serde::Deserialize;

use crate::plan::Reads;
use time::format_description::well_known::Rfc3339;

/// The kinds of resource policies speak of.
///
/// ```
/// assert_eq!(identity_policy::ResourceType::Tool.entity_type(), "Tool");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ResourceType {
    /// A credential, by id (`resolve`, `deliver`).
    Credential,
    /// An upstream of the injection proxy, by name (`proxy`).
    Upstream,
    /// An OAuth provider, by name (`connect`).
    Provider,
    /// An agent's tool, by name (`call-tool`).
    Tool,
    /// An agent's skill, by name (`use-skill`).
    Skill,
}

impl ResourceType {
    /// The entity type's name in policies.
    pub fn entity_type(self) -> &'static str {
        match self {
            Self::Credential => "Credential",
            Self::Upstream => "Upstream",
            Self::Provider => "Provider",
            Self::Tool => "Tool",
            Self::Skill => "Skill",
        }
    }
}

/// The resource of a check: its kind and id.
///
/// ```
/// let tool = identity_policy::ResourceRef::tool("send_email");
/// assert_eq!(tool.id, "send_email");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ResourceRef {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    /// Its id or name.
    pub id: String,
}

macro_rules! resource_constructors {
    ($($(#[$doc:meta])* $name:ident => $kind:ident),* $(,)?) => {
        impl ResourceRef {$(
            $(#[$doc])*
            pub fn $name(id: impl Into<String>) -> Self {
                Self { kind: ResourceType::$kind, id: id.into() }
            }
        )*}
    };
}

resource_constructors! {
    /// A credential, by id.
    credential => Credential,
    /// An upstream, by name.
    upstream => Upstream,
    /// A provider, by name.
    provider => Provider,
    /// A tool, by name.
    tool => Tool,
    /// A skill, by name.
    skill => Skill,
}

/// One permission check: who (a user, the workload acting for them, or both), which action on
/// which resource, and the facts of the request. The principal is `User::"<user>"`, inside
/// `Workload::"<workload>"` when a workload is known; a check with a workload only has the
/// workload as principal.
///
/// ```
/// use identity_policy::{Query, ResourceRef};
/// let query = Query::new("call-tool", ResourceRef::tool("send_email"))
///     .user("alice").workload("spiffe://prod.example/agent").fact("risk", "high");
/// assert_eq!(query.facts[0], ("risk".to_owned(), "high".to_owned()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// The user the agent acts for.
    pub user: Option<String>,
    /// The calling workload's SPIFFE ID.
    pub workload: Option<String>,
    /// The action: `resolve`, `deliver`, `proxy`, `connect`, `call-tool`, `use-skill`.
    pub action: String,
    /// What it acts on.
    pub resource: ResourceRef,
    /// Named facts (`provider`, `model`, `risk`, ...), each a string.
    pub facts: Vec<(String, String)>,
    /// When, for `context.now` and `context.hour` (now when unset).
    pub at: Option<OffsetDateTime>,
}

impl Query {
    /// A check of `action` on `resource`, by nobody yet.
    pub fn new(action: impl Into<String>, resource: ResourceRef) -> Self {
        Self {
            user: None,
            workload: None,
            action: action.into(),
            resource,
            facts: Vec::new(),
            at: None,
        }
    }

    /// The same check for `user`.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The same check by `workload` (a SPIFFE ID).
    #[must_use]
    pub fn workload(mut self, workload: impl Into<String>) -> Self {
        self.workload = Some(workload.into());
        self
    }

    /// The same check with the fact `name` = `value` (`context.<name>` in policies).
    #[must_use]
    pub fn fact(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.facts.push((name.into(), value.into()));
        self
    }

    /// The same check at `at`.
    #[must_use]
    pub fn at(mut self, at: OffsetDateTime) -> Self {
        self.at = Some(at);
        self
    }

    /// The check's principal, the principal's ancestor (the user's workload), its action and
    /// its resource, as Cedar's entity ids.
    pub(crate) fn uids(&self) -> Result<Uids, String> {
        let workload = self
            .workload
            .as_deref()
            .map(|id| uid("Workload", id))
            .transpose()?;
        let (principal, ancestor) = match (&self.user, workload) {
            (Some(user), workload) => (uid("User", user)?, workload),
            (None, Some(workload)) => (workload, None),
            (None, None) => return Err("the check names neither a user nor a workload".into()),
        };
        Ok(Uids {
            principal,
            ancestor,
            action: uid("Action", &self.action)?,
            resource: uid(self.resource.kind.entity_type(), &self.resource.id)?,
        })
    }

    /// Cedar's request for the check, with the facts `reads` names, and the entities: the
    /// user inside its workload when `ancestry` is needed, none otherwise.
    pub(crate) fn to_cedar(
        &self,
        uids: Uids,
        reads: &Reads,
        ancestry: bool,
    ) -> Result<(Request, Entities), String> {
        let mut facts: Vec<(String, RestrictedExpression)> = Vec::new();
        for (name, value) in &self.facts {
            if matches!(name.as_str(), "now" | "hour" | "user" | "workload") {
                return Err(format!("the fact `{name}` is set by the check itself"));
            }
            if reads.includes(name) {
                facts.push((
                    name.clone(),
                    RestrictedExpression::new_string(value.clone()),
                ));
            }
        }
        for (name, value) in [("user", &self.user), ("workload", &self.workload)] {
            if let (true, Some(value)) = (reads.includes(name), value) {
                facts.push((name.into(), RestrictedExpression::new_string(value.clone())));
            }
        }
        let at = self
            .at
            .unwrap_or_else(OffsetDateTime::now_utc)
            .to_offset(time::UtcOffset::UTC);
        if reads.includes("now") {
            let now = at
                .replace_nanosecond(0)
                .map_err(|err| err.to_string())?
                .format(&Rfc3339)
                .map_err(|err| err.to_string())?;
            facts.push(("now".into(), RestrictedExpression::new_datetime(now)));
        }
        if reads.includes("hour") {
            facts.push((
                "hour".into(),
                RestrictedExpression::new_long(i64::from(at.hour())),
            ));
        }
        let context = Context::from_pairs(facts).map_err(|err| err.to_string())?;
        let entities = match (&uids.ancestor, ancestry) {
            (Some(workload), true) => Entities::from_entities(
                [
                    Entity::new_no_attrs(
                        uids.principal.clone(),
                        std::iter::once(workload.clone()).collect(),
                    ),
                    Entity::new_no_attrs(workload.clone(), HashSet::new()),
                ],
                None,
            )
            .map_err(|err| err.to_string())?,
            _ => Entities::empty(),
        };
        let request = Request::new(uids.principal, uids.action, uids.resource, context, None)
            .map_err(|err| err.to_string())?;
        Ok((request, entities))
    }
}

/// A check's entity ids.
#[derive(Debug)]
pub(crate) struct Uids {
    pub(crate) principal: EntityUid,
    pub(crate) ancestor: Option<EntityUid>,
    pub(crate) action: EntityUid,
    pub(crate) resource: EntityUid,
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        type_name(kind)?,
        EntityId::new(id),
    ))
}

/// The entity types checks use, parsed once.
fn type_name(kind: &str) -> Result<EntityTypeName, String> {
    static TYPES: LazyLock<Vec<(&'static str, EntityTypeName)>> = LazyLock::new(|| {
        [
            "User",
            "Workload",
            "Action",
            "Credential",
            "Upstream",
            "Provider",
            "Tool",
            "Skill",
        ]
        .into_iter()
        .filter_map(|name| Some((name, name.parse().ok()?)))
        .collect()
    });
    TYPES
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, parsed)| parsed.clone())
        .ok_or_else(|| format!("`{kind}` is not an entity type"))
}
