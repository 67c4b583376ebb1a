//! The migration request: one step of moving from a source credential to a target, which derives
//! two request contexts.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::context::{
    InvalidInput, MigrationPhase, PHASES_EXPECTED, RequestContext, ResourceKind, SubjectToken,
};
use crate::fields::Fields;

/// A request for the two credentials of one migration step (`POST /api/migrate/resolve`).
///
/// The source is always read; the target is written in `load` and `rollback`, read otherwise,
/// and always read when `dry_run` is set. Both derived contexts are `shared` and keep the phase,
/// so that rules can match on it.
///
/// ```
/// use identity_core::{MigrationRequest, MigrationPhase};
///
/// let request = MigrationRequest::from_json(&serde_json::json!({
///     "migrationId": "m1", "phase": "load", "sourceResourceId": "old-db",
///     "targetResourceId": "new-db", "userId": "alice", "provider": "openai",
///     "model": "gpt-4o", "traceId": "t1", "dryRun": false
/// }))?;
/// assert_eq!(request.source_context().action, "read");
/// assert_eq!(request.target_context().action, "write");
/// assert_eq!(request.target_context().phase, Some(MigrationPhase::Load));
/// # Ok::<(), identity_core::InvalidInput>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct MigrationRequest {
    /// Ties the phases of one migration run together.
    pub migration_id: String,
    /// The phase of this step.
    pub phase: MigrationPhase,
    /// Where data comes from.
    pub source_resource_id: String,
    /// Where data goes to.
    pub target_resource_id: String,
    /// The user the migration runs for.
    pub user_id: String,
    /// The model provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The trace.
    pub trace_id: String,
    /// A rehearsal: the target is only read.
    pub dry_run: bool,
    /// The batch of a paginated migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_index: Option<u64>,
    /// How many batches there are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_batches: Option<u64>,
    /// When the request was made, as the caller says.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub requested_at: Option<OffsetDateTime>,
    /// The user's session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The parent trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_trace_id: Option<String>,
    /// The SPIFFE id of the calling workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// The caller's own token, passed to both derived contexts; never read from a body.
    #[serde(skip)]
    pub subject_token: Option<SubjectToken>,
    /// The calling workload's own token, passed to both derived contexts; never from a body.
    #[serde(skip)]
    pub actor_token: Option<SubjectToken>,
}

impl MigrationRequest {
    /// Reads the wire form, listing every bad field at once. `dryRun` must be a boolean (a
    /// string is refused, not taken as truthy); `batchIndex` an integer ≥ 0; `totalBatches` ≥ 1.
    ///
    /// ```
    /// use identity_core::MigrationRequest;
    /// let err = MigrationRequest::from_json(&serde_json::json!({"dryRun": "false"})).unwrap_err();
    /// assert!(err.problems.iter().any(|p| p.field == "dryRun"));
    /// ```
    pub fn from_json(value: &Value) -> Result<Self, InvalidInput> {
        Self::read(Fields::of_value(Self::WHAT, Self::FIELDS, value)?)
    }

    /// Like [`MigrationRequest::from_json`], taking the value.
    ///
    /// ```
    /// let err = identity_core::MigrationRequest::from_value(serde_json::json!([])).unwrap_err();
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
    /// let err = identity_core::MigrationRequest::from_slice(b"[1, 2]").unwrap_err();
    /// assert_eq!(err.to_string(), "invalid migration request: `(body)` must be a JSON object");
    /// ```
    pub fn from_slice(body: &[u8]) -> Result<Self, InvalidInput> {
        Self::read(Fields::of_slice(Self::WHAT, Self::FIELDS, body)?)
    }

    const WHAT: &'static str = "migration request";
    const FIELDS: &'static [&'static str] = &[
        "migrationId",
        "phase",
        "sourceResourceId",
        "targetResourceId",
        "userId",
        "provider",
        "model",
        "traceId",
        "dryRun",
        "batchIndex",
        "totalBatches",
        "requestedAt",
        "sessionId",
        "parentTraceId",
        "spiffeId",
    ];

    fn read(mut fields: Fields<'_>) -> Result<Self, InvalidInput> {
        const WHAT: &str = MigrationRequest::WHAT;
        let migration_id = fields.required_str("migrationId");
        let phase = fields.required_enum("phase", PHASES_EXPECTED);
        let source_resource_id = fields.required_str("sourceResourceId");
        let target_resource_id = fields.required_str("targetResourceId");
        let user_id = fields.required_str("userId");
        let provider = fields.required_str("provider");
        let model = fields.required_str("model");
        let trace_id = fields.required_str("traceId");
        let dry_run = fields.optional_bool("dryRun").unwrap_or(false);
        let batch_index = fields.optional_count("batchIndex", 0);
        let total_batches = fields.optional_count("totalBatches", 1);
        let requested_at = fields.optional_time("requestedAt");
        let session_id = fields.optional_str("sessionId");
        let parent_trace_id = fields.optional_str("parentTraceId");
        let spiffe_id = fields.optional_str("spiffeId");
        let request = phase.map(|phase| Self {
            migration_id,
            phase,
            source_resource_id,
            target_resource_id,
            user_id,
            provider,
            model,
            trace_id,
            dry_run,
            batch_index,
            total_batches,
            requested_at,
            session_id,
            parent_trace_id,
            spiffe_id,
            subject_token: None,
            actor_token: None,
        });
        fields.finish(WHAT, request)?.ok_or_else(|| InvalidInput {
            what: WHAT,
            problems: Vec::new(),
        })
    }

    /// The context of the source side: `resourceId = sourceResourceId`, `action = "read"`.
    ///
    /// ```
    /// # use identity_core::MigrationRequest;
    /// # let request = MigrationRequest::from_json(&serde_json::json!({
    /// #     "migrationId": "m1", "phase": "extract", "sourceResourceId": "old",
    /// #     "targetResourceId": "new", "userId": "u", "provider": "p", "model": "m", "traceId": "t"
    /// # })).unwrap();
    /// assert_eq!(request.source_context().resource_id, "old");
    /// ```
    pub fn source_context(&self) -> RequestContext {
        self.context(&self.source_resource_id, "read")
    }

    /// The context of the target side: `resourceId = targetResourceId`, `action = "write"` for
    /// `load` and `rollback` unless this is a dry run, `"read"` otherwise.
    ///
    /// ```
    /// # use identity_core::MigrationRequest;
    /// # let request = MigrationRequest::from_json(&serde_json::json!({
    /// #     "migrationId": "m1", "phase": "rollback", "sourceResourceId": "old", "dryRun": true,
    /// #     "targetResourceId": "new", "userId": "u", "provider": "p", "model": "m", "traceId": "t"
    /// # })).unwrap();
    /// assert_eq!(request.target_context().action, "read");
    /// ```
    pub fn target_context(&self) -> RequestContext {
        let action = if self.phase.writes() && !self.dry_run {
            "write"
        } else {
            "read"
        };
        self.context(&self.target_resource_id, action)
    }

    fn context(&self, resource_id: &str, action: &str) -> RequestContext {
        RequestContext {
            user_id: self.user_id.clone(),
            resource_id: resource_id.to_owned(),
            resource_kind: ResourceKind::Shared,
            provider: self.provider.clone(),
            model: self.model.clone(),
            action: action.to_owned(),
            trace_id: self.trace_id.clone(),
            requested_at: self.requested_at,
            session_id: self.session_id.clone(),
            parent_trace_id: self.parent_trace_id.clone(),
            spiffe_id: self.spiffe_id.clone(),
            migration_id: Some(self.migration_id.clone()),
            phase: Some(self.phase),
            subject_token: self.subject_token.clone(),
            actor_token: self.actor_token.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for MigrationRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}
