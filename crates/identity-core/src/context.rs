//! The request context a resolution is made for, and the migration request that derives two.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::fields::{Fields, control_problem, has_control};
use time::OffsetDateTime;

use crate::error::Error;
use crate::secret::Secret;

/// Whether the resource the agent acts on is shared or belongs to the user.
///
/// ```
/// use identity_core::ResourceKind;
/// assert_eq!("personal".parse::<ResourceKind>().unwrap(), ResourceKind::Personal);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// A resource shared by many users.
    Shared,
    /// A resource of the user's own.
    Personal,
}

impl ResourceKind {
    /// The wire spelling.
    ///
    /// ```
    /// assert_eq!(identity_core::ResourceKind::Shared.as_str(), "shared");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Personal => "personal",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shared" => Ok(Self::Shared),
            "personal" => Ok(Self::Personal),
            _ => Err(Error::InvalidArgument {
                argument: "resource kind",
                problem: "must be `shared` or `personal`".into(),
            }),
        }
    }
}

/// A phase of a data migration run: `dry-run → extract → transform → load → verify`, or
/// `rollback`.
///
/// ```
/// use identity_core::MigrationPhase;
/// assert_eq!("dry-run".parse::<MigrationPhase>().unwrap(), MigrationPhase::DryRun);
/// assert!(MigrationPhase::Load.writes());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationPhase {
    /// A rehearsal: nothing is written.
    DryRun,
    /// Reading from the source.
    Extract,
    /// Reshaping data.
    Transform,
    /// Writing to the target.
    Load,
    /// Checking the target.
    Verify,
    /// Undoing a load on the target.
    Rollback,
}

impl MigrationPhase {
    /// Every phase, in run order.
    pub const ALL: [Self; 6] = [
        Self::DryRun,
        Self::Extract,
        Self::Transform,
        Self::Load,
        Self::Verify,
        Self::Rollback,
    ];

    /// The wire spelling.
    ///
    /// ```
    /// assert_eq!(identity_core::MigrationPhase::Rollback.as_str(), "rollback");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DryRun => "dry-run",
            Self::Extract => "extract",
            Self::Transform => "transform",
            Self::Load => "load",
            Self::Verify => "verify",
            Self::Rollback => "rollback",
        }
    }

    /// True for the phases that write to the target (`load`, `rollback`).
    ///
    /// ```
    /// assert!(!identity_core::MigrationPhase::Verify.writes());
    /// ```
    pub const fn writes(self) -> bool {
        matches!(self, Self::Load | Self::Rollback)
    }
}

impl fmt::Display for MigrationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MigrationPhase {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|phase| phase.as_str() == s)
            .ok_or_else(|| Error::InvalidArgument {
                argument: "migration phase",
                problem: PHASES_EXPECTED.into(),
            })
    }
}

pub(crate) const PHASES_EXPECTED: &str =
    "must be one of `dry-run`, `extract`, `transform`, `load`, `verify`, `rollback`";

/// One field of a request that is not acceptable, and why. Values are never echoed back: a
/// caller may have put a token in the wrong field.
///
/// ```
/// use identity_core::{FieldProblem, Problem};
/// let p = FieldProblem { field: "userId".into(), problem: Problem::Missing };
/// assert_eq!(p.to_string(), "`userId` is missing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// The field, in the wire spelling.
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.problem)
    }
}

/// What is wrong with a field.
///
/// ```
/// use identity_core::Problem;
/// assert_eq!(Problem::WrongType { expected: "a string" }.to_string(), "must be a string");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
#[non_exhaustive]
pub enum Problem {
    /// The field is required and absent (or null).
    Missing,
    /// The field is required and empty.
    Empty,
    /// The field has the wrong JSON type.
    WrongType {
        /// What was expected, e.g. "a string".
        expected: &'static str,
    },
    /// The value is of the right type but not acceptable.
    Invalid {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("is missing"),
            Self::Empty => f.write_str("is empty"),
            Self::WrongType { expected } => write!(f, "must be {expected}"),
            Self::Invalid { reason } => f.write_str(reason),
        }
    }
}

/// A request body that is not acceptable, with every bad field listed.
///
/// ```
/// use identity_core::RequestContext;
///
/// let err = RequestContext::from_json(&serde_json::json!({"userId": ""})).unwrap_err();
/// assert!(err.to_string().starts_with("invalid request context: `userId` is empty; "));
/// assert!(err.problems.iter().any(|p| p.field == "traceId"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidInput {
    /// What was being read, e.g. "request context".
    pub what: &'static str,
    /// Every bad field, in the order they were checked.
    pub problems: Vec<FieldProblem>,
}

/// The context of one request an agent makes: who, on what, with which model, doing what.
///
/// It is what rules match on. Build one with [`RequestContext::builder`], or read the wire form
/// with [`RequestContext::from_json`] (or serde), which is lenient where real clients differ:
/// `null` means absent, unknown keys are ignored, `requestedAt` takes any RFC 3339 form.
///
/// ```
/// use identity_core::{RequestContext, ResourceKind};
///
/// let ctx = RequestContext::builder()
///     .user_id("alice")
///     .resource_id("alice-docs")
///     .resource_kind(ResourceKind::Personal)
///     .provider("openai")
///     .model("gpt-4o")
///     .action("read")
///     .trace_id("trace-1")
///     .build()?;
/// assert_eq!(ctx.user_id, "alice");
/// # Ok::<(), identity_core::InvalidInput>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RequestContext {
    /// The user the agent acts for.
    pub user_id: String,
    /// The resource acted on.
    pub resource_id: String,
    /// Whether the resource is shared or personal.
    pub resource_kind: ResourceKind,
    /// The model provider (`openai`, `anthropic`, ... or any name rules use).
    pub provider: String,
    /// The model.
    pub model: String,
    /// The action (`read`, `write`, ...).
    pub action: String,
    /// The trace this request belongs to.
    pub trace_id: String,
    /// When the request was made, as the caller says; `None` means now.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub requested_at: Option<OffsetDateTime>,
    /// The user's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The trace of the agent call that made this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_trace_id: Option<String>,
    /// The SPIFFE id of the calling workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// The migration this request is part of, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_id: Option<String>,
    /// The migration phase, if any; rules with `matchPhase` match only when it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<MigrationPhase>,
    /// The caller's own token, for stores that act for the caller (token exchange). It is never
    /// read from a request body: whoever authenticated the caller sets it.
    #[serde(skip)]
    pub subject_token: Option<SubjectToken>,
    /// The calling workload's own token (its JWT-SVID), for stores that delegate: token
    /// exchange sends it as the RFC 8693 `actor_token`, so that the issued token's `act` names
    /// the agent acting for the user. Like the subject token, never read from a request body.
    #[serde(skip)]
    pub actor_token: Option<SubjectToken>,
}

/// A caller's own token, presented to stores that act for the caller: token exchange sends the
/// user's as the RFC 8693 `subject_token`, and the calling workload's as the `actor_token`.
/// `Debug` is redacted.
///
/// Equality compares the tokens, for tests and cache keys; it is not constant-time, so never
/// decide who a caller is with it.
///
/// ```
/// use identity_core::{Secret, SubjectToken};
/// let token = SubjectToken::new(Secret::new("eyJ..."));
/// assert_eq!(format!("{token:?}"), "SubjectToken([redacted])");
/// assert_eq!(token.secret().expose_secret(), "eyJ...");
/// ```
#[derive(Clone)]
pub struct SubjectToken(Secret);

impl SubjectToken {
    /// Wraps the caller's token.
    pub fn new(token: Secret) -> Self {
        Self(token)
    }

    /// The token.
    pub fn secret(&self) -> &Secret {
        &self.0
    }
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectToken([redacted])")
    }
}

impl PartialEq for SubjectToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for SubjectToken {}

impl RequestContext {
    /// A builder; [`RequestContextBuilder::build`] checks that every required field is set.
    ///
    /// ```
    /// let err = identity_core::RequestContext::builder().user_id("alice").build().unwrap_err();
    /// assert!(err.problems.iter().any(|p| p.field == "resourceId"));
    /// ```
    pub fn builder() -> RequestContextBuilder {
        RequestContextBuilder::default()
    }

    /// Reads the wire form (`POST /api/resolve`), listing every bad field at once.
    ///
    /// ```
    /// use identity_core::RequestContext;
    /// let ctx = RequestContext::from_json(&serde_json::json!({
    ///     "userId": "alice", "resourceId": "docs", "resourceKind": "shared",
    ///     "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t1",
    ///     "requestedAt": "2026-11-22T23:02:55.563939+00:00", "sessionId": null, "extra": 1
    /// }))?;
    /// assert_eq!(ctx.session_id, None);
    /// assert!(ctx.requested_at.is_some());
    /// # Ok::<(), identity_core::InvalidInput>(())
    /// ```
    pub fn from_json(value: &Value) -> Result<Self, InvalidInput> {
        Self::read(Fields::of_value(Self::WHAT, Self::FIELDS, value)?)
    }

    /// Like [`RequestContext::from_json`], taking the value.
    ///
    /// ```
    /// let err = identity_core::RequestContext::from_value(serde_json::json!([])).unwrap_err();
    /// assert_eq!(err.problems[0].field, "(body)");
    /// ```
    pub fn from_value(value: Value) -> Result<Self, InvalidInput> {
        Self::from_json(&value)
    }

    /// Reads the wire form straight from a request body, without building a JSON tree: the
    /// fastest way for a server. A body that is not JSON, or not an object, is reported as a
    /// problem of the field `(body)`.
    ///
    /// ```
    /// let body = br#"{"userId":"alice","resourceId":"docs","resourceKind":"shared","provider":"openai",
    ///                "model":"gpt-4o","action":"read","traceId":"t1","sessionId":null}"#;
    /// let ctx = identity_core::RequestContext::from_slice(body)?;
    /// assert_eq!(ctx.user_id, "alice");
    /// let err = identity_core::RequestContext::from_slice(b"{not json").unwrap_err();
    /// assert_eq!(err.problems[0].field, "(body)");
    /// # Ok::<(), identity_core::InvalidInput>(())
    /// ```
    pub fn from_slice(body: &[u8]) -> Result<Self, InvalidInput> {
        Self::read(Fields::of_slice(Self::WHAT, Self::FIELDS, body)?)
    }

    const WHAT: &'static str = "request context";
    const FIELDS: &'static [&'static str] = &[
        "userId",
        "resourceId",
        "resourceKind",
        "provider",
        "model",
        "action",
        "traceId",
        "requestedAt",
        "sessionId",
        "parentTraceId",
        "spiffeId",
        "migrationId",
        "phase",
    ];

    fn read(mut fields: Fields<'_>) -> Result<Self, InvalidInput> {
        const WHAT: &str = RequestContext::WHAT;
        let user_id = fields.required_str("userId");
        let resource_id = fields.required_str("resourceId");
        let resource_kind = fields.required_enum("resourceKind", "must be `shared` or `personal`");
        let provider = fields.required_str("provider");
        let model = fields.required_str("model");
        let action = fields.required_str("action");
        let trace_id = fields.required_str("traceId");
        let requested_at = fields.optional_time("requestedAt");
        let session_id = fields.optional_str("sessionId");
        let parent_trace_id = fields.optional_str("parentTraceId");
        let spiffe_id = fields.optional_str("spiffeId");
        let migration_id = fields.optional_str("migrationId");
        let phase = match fields.optional_str("phase") {
            None => None,
            Some(text) => match text.parse() {
                Ok(phase) => Some(phase),
                Err(_) => {
                    fields.problem(
                        "phase",
                        Problem::Invalid {
                            reason: PHASES_EXPECTED.into(),
                        },
                    );
                    None
                }
            },
        };
        let context = resource_kind.map(|resource_kind| Self {
            user_id,
            resource_id,
            resource_kind,
            provider,
            model,
            action,
            trace_id,
            requested_at,
            session_id,
            parent_trace_id,
            spiffe_id,
            migration_id,
            phase,
            subject_token: None,
            actor_token: None,
        });
        let context = fields.finish(WHAT, context)?;
        // `resource_kind` is `None` only when a problem was recorded, and `finish` returned it.
        context.ok_or_else(|| InvalidInput {
            what: WHAT,
            problems: Vec::new(),
        })
    }
}

impl<'de> Deserialize<'de> for RequestContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Builds a [`RequestContext`]; see [`RequestContext::builder`].
///
/// ```
/// use identity_core::{RequestContext, ResourceKind, MigrationPhase};
/// let ctx = RequestContext::builder()
///     .user_id("u").resource_id("r").resource_kind(ResourceKind::Shared)
///     .provider("p").model("m").action("read").trace_id("t")
///     .spiffe_id("spiffe://example.org/agent").phase(MigrationPhase::Extract)
///     .build()?;
/// assert_eq!(ctx.phase, Some(MigrationPhase::Extract));
/// # Ok::<(), identity_core::InvalidInput>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestContextBuilder {
    user_id: Option<String>,
    resource_id: Option<String>,
    resource_kind: Option<ResourceKind>,
    provider: Option<String>,
    model: Option<String>,
    action: Option<String>,
    trace_id: Option<String>,
    requested_at: Option<OffsetDateTime>,
    session_id: Option<String>,
    parent_trace_id: Option<String>,
    spiffe_id: Option<String>,
    migration_id: Option<String>,
    phase: Option<MigrationPhase>,
    subject_token: Option<SubjectToken>,
    actor_token: Option<SubjectToken>,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.$name = Some(value.into());
            self
        }
    )*};
}

impl RequestContextBuilder {
    setters! {
        /// Sets `userId`.
        user_id: String,
        /// Sets `resourceId`.
        resource_id: String,
        /// Sets `resourceKind`.
        resource_kind: ResourceKind,
        /// Sets `provider`.
        provider: String,
        /// Sets `model`.
        model: String,
        /// Sets `action`.
        action: String,
        /// Sets `traceId`.
        trace_id: String,
        /// Sets `requestedAt`.
        requested_at: OffsetDateTime,
        /// Sets `sessionId`.
        session_id: String,
        /// Sets `parentTraceId`.
        parent_trace_id: String,
        /// Sets `spiffeId`.
        spiffe_id: String,
        /// Sets `migrationId`.
        migration_id: String,
        /// Sets `phase`.
        phase: MigrationPhase,
        /// Sets the caller's own token, for stores that act for the caller.
        subject_token: SubjectToken,
        /// Sets the calling workload's own token, for stores that delegate.
        actor_token: SubjectToken,
    }

    /// Checks the required fields and builds the context.
    ///
    /// ```
    /// let err = identity_core::RequestContext::builder().build().unwrap_err();
    /// assert_eq!(err.problems.len(), 7);
    /// ```
    pub fn build(self) -> Result<RequestContext, InvalidInput> {
        const WHAT: &str = "request context";
        let mut problems = Vec::new();
        let mut required = |field: &str, value: Option<String>| match value {
            Some(text) if has_control(&text) => {
                problems.push(FieldProblem {
                    field: field.into(),
                    problem: control_problem(),
                });
                String::new()
            }
            Some(text) if !text.trim().is_empty() => text,
            Some(_) => {
                problems.push(FieldProblem {
                    field: field.into(),
                    problem: Problem::Empty,
                });
                String::new()
            }
            None => {
                problems.push(FieldProblem {
                    field: field.into(),
                    problem: Problem::Missing,
                });
                String::new()
            }
        };
        let user_id = required("userId", self.user_id);
        let resource_id = required("resourceId", self.resource_id);
        let provider = required("provider", self.provider);
        let model = required("model", self.model);
        let action = required("action", self.action);
        let trace_id = required("traceId", self.trace_id);
        for (field, value) in [
            ("sessionId", &self.session_id),
            ("parentTraceId", &self.parent_trace_id),
            ("spiffeId", &self.spiffe_id),
            ("migrationId", &self.migration_id),
        ] {
            if value.as_deref().is_some_and(has_control) {
                problems.push(FieldProblem {
                    field: field.into(),
                    problem: control_problem(),
                });
            }
        }
        let Some(resource_kind) = self.resource_kind else {
            problems.push(FieldProblem {
                field: "resourceKind".into(),
                problem: Problem::Missing,
            });
            return Err(InvalidInput {
                what: WHAT,
                problems,
            });
        };
        if !problems.is_empty() {
            return Err(InvalidInput {
                what: WHAT,
                problems,
            });
        }
        Ok(RequestContext {
            user_id,
            resource_id,
            resource_kind,
            provider,
            model,
            action,
            trace_id,
            requested_at: self.requested_at,
            session_id: self.session_id,
            parent_trace_id: self.parent_trace_id,
            spiffe_id: self.spiffe_id,
            migration_id: self.migration_id,
            phase: self.phase,
            subject_token: self.subject_token,
            actor_token: self.actor_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::MigrationRequest;
    use serde_json::json;

    fn body() -> Value {
        json!({"userId": "alice", "resourceId": "docs", "resourceKind": "shared",
               "provider": "openai", "model": "gpt-4o", "action": "read", "traceId": "t1"})
    }

    #[test]
    fn nulls_are_absent_and_unknown_keys_ignored() {
        let mut value = body();
        for key in [
            "requestedAt",
            "sessionId",
            "parentTraceId",
            "spiffeId",
            "phase",
        ] {
            value[key] = Value::Null;
        }
        value["somethingNew"] = json!({"nested": true});
        let ctx = RequestContext::from_json(&value).unwrap();
        assert_eq!(ctx.requested_at, None);
        assert_eq!(ctx.spiffe_id, None);
    }

    #[test]
    fn every_bad_field_is_listed_without_echoing_values() {
        let value = json!({"userId": 42, "resourceId": "", "resourceKind": "public",
                           "provider": "openai", "model": null, "action": "read",
                           "requestedAt": "sk-secret-looking-value"});
        let err = RequestContext::from_json(&value).unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "userId",
                "resourceId",
                "resourceKind",
                "model",
                "traceId",
                "requestedAt"
            ]
        );
        assert!(!err.to_string().contains("sk-secret-looking-value"));
        assert!(!err.to_string().contains("public"));
    }

    #[test]
    fn control_characters_are_refused_so_that_logs_cannot_be_forged() {
        let mut value = body();
        value["userId"] = json!("alice\n2026-11-22T00:00:00Z INFO credential granted user_id=root");
        value["sessionId"] = json!("s\u{7}");
        let err = RequestContext::from_json(&value).unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["userId", "sessionId"]);
        assert!(err.to_string().contains("control character"));
        let built = RequestContext::builder()
            .user_id("u")
            .resource_id("r\r")
            .resource_kind(ResourceKind::Shared)
            .provider("p")
            .model("m")
            .action("a")
            .trace_id("t")
            .spiffe_id("x\ty")
            .build()
            .unwrap_err();
        let fields: Vec<_> = built.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["resourceId", "spiffeId"]);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        for value in [json!([]), json!("x"), json!(1), Value::Null] {
            let err = RequestContext::from_json(&value).unwrap_err();
            assert_eq!(err.problems[0].field, "(body)");
        }
    }

    #[test]
    fn serde_reads_the_same_as_from_json() {
        let ctx: RequestContext = serde_json::from_value(body()).unwrap();
        assert_eq!(ctx, RequestContext::from_json(&body()).unwrap());
        let err = serde_json::from_value::<RequestContext>(json!({})).unwrap_err();
        assert!(err.to_string().contains("`userId` is missing"));
    }

    #[test]
    fn migration_contexts_follow_the_reference_derivation() {
        let base = json!({"migrationId": "m1", "sourceResourceId": "src", "targetResourceId": "dst",
                          "userId": "u", "provider": "openai", "model": "gpt-4o", "traceId": "t"});
        for phase in MigrationPhase::ALL {
            for dry_run in [false, true] {
                let mut value = base.clone();
                value["phase"] = json!(phase.as_str());
                value["dryRun"] = json!(dry_run);
                let request = MigrationRequest::from_json(&value).unwrap();
                let source = request.source_context();
                let target = request.target_context();
                assert_eq!(source.action, "read");
                assert_eq!(source.resource_id, "src");
                assert_eq!(target.resource_id, "dst");
                let expected = if phase.writes() && !dry_run {
                    "write"
                } else {
                    "read"
                };
                assert_eq!(target.action, expected, "{phase} dry_run={dry_run}");
                for side in [&source, &target] {
                    assert_eq!(side.resource_kind, ResourceKind::Shared);
                    assert_eq!(side.phase, Some(phase));
                    assert_eq!(side.migration_id.as_deref(), Some("m1"));
                }
            }
        }
    }

    #[test]
    fn migration_counts_and_flags_are_typed() {
        let base = json!({"migrationId": "m1", "phase": "load", "sourceResourceId": "s",
                          "targetResourceId": "t", "userId": "u", "provider": "p", "model": "m",
                          "traceId": "t"});
        let mut ok = base.clone();
        ok["batchIndex"] = json!(0);
        ok["totalBatches"] = json!(3);
        ok["dryRun"] = Value::Null;
        let request = MigrationRequest::from_json(&ok).unwrap();
        assert_eq!(
            (request.batch_index, request.total_batches, request.dry_run),
            (Some(0), Some(3), false)
        );
        for (field, bad) in [
            ("batchIndex", json!(-1)),
            ("totalBatches", json!(0)),
            ("batchIndex", json!(1.5)),
            ("dryRun", json!("true")),
            ("phase", json!("deploy")),
        ] {
            let mut value = base.clone();
            value[field] = bad;
            let err = MigrationRequest::from_json(&value).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{field}");
            assert_eq!(err.problems[0].field, field);
        }
    }
}
