//! Routing rules as written in configuration: which context gets which credential.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{ApprovalRequirement, Canary};
use serde_json::Value;

use crate::context::{MigrationPhase, ResourceKind};
use crate::credential::{Credential, CredentialKind};
use crate::delivery::Delivery;
use crate::error::ConfigError;

/// One value or a list of values, as `matchAction` and `matchPhase` accept.
///
/// ```
/// use identity_core::OneOrMany;
///
/// let one: OneOrMany<String> = serde_json::from_str(r#""read""#).unwrap();
/// let many: OneOrMany<String> = serde_json::from_str(r#"["read","write"]"#).unwrap();
/// assert_eq!(one.as_slice(), ["read"]);
/// assert_eq!(many.as_slice(), ["read", "write"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list of values.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    ///
    /// ```
    /// assert_eq!(identity_core::OneOrMany::One(1).as_slice(), [1]);
    /// ```
    pub fn as_slice(&self) -> &[T] {
        match self {
            Self::One(value) => std::slice::from_ref(value),
            Self::Many(values) => values,
        }
    }
}

impl<T> From<T> for OneOrMany<T> {
    fn from(value: T) -> Self {
        Self::One(value)
    }
}

impl<T> From<Vec<T>> for OneOrMany<T> {
    fn from(values: Vec<T>) -> Self {
        Self::Many(values)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read the value first so that both shapes can be tried with a clear error, which an
        // untagged enum does not give ("data did not match any variant").
        match Value::deserialize(deserializer)? {
            Value::Array(items) => items
                .into_iter()
                .map(T::deserialize)
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Many)
                .map_err(serde::de::Error::custom),
            value => T::deserialize(value)
                .map(Self::One)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A routing rule: when every `match*` field it has holds for a request, it names the credential.
///
/// The JSON form is the reference's (camelCase). Every `match*` field present must hold; an
/// absent one matches anything. `matchAction` and `matchPhase` take one value or a list.
/// `matchResourceId` and `matchModel` take `*` globs. Rules are checked when a router is built:
/// a missing `priority`, an empty matcher or list, a bad glob, a duplicate id and an unknown store
/// are errors there, naming the rule and the field. Unknown fields are refused here, because a
/// misspelt matcher (`matchUserID`) would otherwise silently widen a rule.
///
/// ```
/// use identity_core::{RoutingRule, CredentialKind};
///
/// let rule = RoutingRule::new("rule-alice", "alice-openai")
///     .with_priority(20)
///     .with_credential_kind(CredentialKind::UserDelegated)
///     .with_match_user_id("alice")
///     .with_match_action(["read", "write"]);
/// assert_eq!(rule.match_action.unwrap().as_slice(), ["read", "write"]);
///
/// let json = r#"{"id":"r1","credentialRef":"openai-prod","priority":10,"matchProvider":"openai"}"#;
/// let rule: RoutingRule = serde_json::from_str(json).unwrap();
/// assert_eq!(rule.priority, Some(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct RoutingRule {
    /// Unique id, reported in resolutions, denials and audit events.
    pub id: String,
    /// What the rule is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The credential slot the rule names.
    pub credential_ref: String,
    /// The kind the credential must have; checked against the credential found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<CredentialKind>,
    /// Higher wins; ties go to the rule declared first. Required (kept optional here so that its
    /// absence is reported by the router, with the rule's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// The store to ask for the credential; the router's default store when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Matches `resourceKind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_resource_kind: Option<ResourceKind>,
    /// Matches `action`: one value or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_action: Option<OneOrMany<String>>,
    /// Matches `provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_provider: Option<String>,
    /// Matches `userId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_user_id: Option<String>,
    /// Matches the migration `phase`: one value or a list. A request with no phase never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_phase: Option<OneOrMany<MigrationPhase>>,
    /// Matches `spiffeId`. A request with no SPIFFE id never matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_spiffe_id: Option<String>,
    /// Matches `resourceId`; `*` matches any run of characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_resource_id: Option<String>,
    /// Matches `model`; `*` matches any run of characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_model: Option<String>,
    /// The credential must not be able to write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Whether the secret this rule grants may be delivered to a caller with the permission to
    /// receive secrets; by default it is only injected by the broker.
    #[serde(default, skip_serializing_if = "Delivery::is_proxy_only")]
    pub delivery: Delivery,
    /// Scopes the credential must hold (its `scope`, space-separated). A user's credential that
    /// lacks one is refused with `consent_required`, naming the scopes to ask the user for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_scopes: Vec<String>,
    /// When permission policies are in force, the grant needs a policy that permits it
    /// (otherwise only a policy that forbids it refuses it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_authorization: bool,
    /// The call must be approved before it may use the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<ApprovalRequirement>,
    /// A second credential that a steady share of users (or workloads) get instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
}

macro_rules! rule_setters {
    ($($(#[$doc:meta])* $method:ident => $field:ident: $ty:ty),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $method(mut self, value: impl Into<$ty>) -> Self {
            self.$field = Some(value.into());
            self
        }
    )*};
}

impl RoutingRule {
    /// A rule with an id and a credential ref and nothing else (no priority yet).
    ///
    /// ```
    /// let rule = identity_core::RoutingRule::new("catch-all", "fallback").with_priority(0);
    /// assert_eq!(rule.credential_ref, "fallback");
    /// ```
    pub fn new(id: impl Into<String>, credential_ref: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            credential_ref: credential_ref.into(),
            ..Self::default()
        }
    }

    rule_setters! {
        /// Sets `description`.
        with_description => description: String,
        /// Sets `credentialKind`.
        with_credential_kind => credential_kind: CredentialKind,
        /// Sets `priority`.
        with_priority => priority: i64,
        /// Sets `store`.
        with_store => store: String,
        /// Sets `matchResourceKind`.
        with_match_resource_kind => match_resource_kind: ResourceKind,
        /// Sets `matchProvider`.
        with_match_provider => match_provider: String,
        /// Sets `matchUserId`.
        with_match_user_id => match_user_id: String,
        /// Sets `matchSpiffeId`.
        with_match_spiffe_id => match_spiffe_id: String,
        /// Sets `matchResourceId` (a `*` glob).
        with_match_resource_id => match_resource_id: String,
        /// Sets `matchModel` (a `*` glob).
        with_match_model => match_model: String,
    }

    /// Sets `matchAction` to a list.
    ///
    /// ```
    /// let rule = identity_core::RoutingRule::new("r", "c").with_match_action(["write"]);
    /// assert_eq!(rule.match_action.unwrap().as_slice(), ["write"]);
    /// ```
    pub fn with_match_action<I, S>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.match_action = Some(OneOrMany::Many(
            actions.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Sets `matchPhase` to a list.
    ///
    /// ```
    /// use identity_core::{RoutingRule, MigrationPhase};
    /// let rule = RoutingRule::new("r", "c").with_match_phase([MigrationPhase::Load]);
    /// assert_eq!(rule.match_phase.unwrap().as_slice(), [MigrationPhase::Load]);
    /// ```
    pub fn with_match_phase(mut self, phases: impl IntoIterator<Item = MigrationPhase>) -> Self {
        self.match_phase = Some(OneOrMany::Many(phases.into_iter().collect()));
        self
    }

    /// Sets `readOnly`.
    ///
    /// ```
    /// assert!(identity_core::RoutingRule::new("r", "c").with_read_only(true).read_only);
    /// ```
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets `delivery`.
    ///
    /// ```
    /// use identity_core::{Delivery, RoutingRule};
    /// let rule = RoutingRule::new("r", "c").with_delivery(Delivery::Reveal);
    /// assert_eq!(serde_json::to_value(&rule).unwrap()["delivery"], "reveal");
    /// ```
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// The rule, requiring the credential to hold `scopes`.
    ///
    /// ```
    /// let rule = identity_core::RoutingRule::new("crm", "user-crm").with_require_scopes(["crm:read"]);
    /// assert_eq!(serde_json::to_value(&rule).unwrap()["requireScopes"][0], "crm:read");
    /// ```
    pub fn with_require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The rule, needing a permitting policy or not.
    ///
    /// ```
    /// let rule = identity_core::RoutingRule::new("gh", "github").with_require_authorization(true);
    /// assert_eq!(serde_json::to_value(&rule).unwrap()["requireAuthorization"], true);
    /// ```
    pub fn with_require_authorization(mut self, required: bool) -> Self {
        self.require_authorization = required;
        self
    }

    /// The rule, demanding that each call be approved first.
    ///
    /// ```
    /// use identity_core::{ApprovalRequirement, RoutingRule};
    /// let rule = RoutingRule::new("pay", "payments").with_require_approval(ApprovalRequirement::new(2, ["a", "b", "c"]));
    /// assert_eq!(serde_json::to_value(&rule).unwrap()["requireApproval"]["required"], 2);
    /// ```
    pub fn with_require_approval(mut self, demand: ApprovalRequirement) -> Self {
        self.require_approval = Some(demand);
        self
    }

    /// The rule, sending a share of its traffic to a canary credential.
    ///
    /// ```
    /// use identity_core::{Canary, CanaryWeight, RoutingRule};
    /// let rule = RoutingRule::new("llm", "openai-v1")
    ///     .with_canary(Canary::new("openai-v2", CanaryWeight::percent(10.0)?));
    /// assert_eq!(serde_json::to_value(&rule).unwrap()["canary"]["weight"], 10.0);
    /// # Ok::<(), String>(())
    /// ```
    pub fn with_canary(mut self, canary: Canary) -> Self {
        self.canary = Some(canary);
        self
    }
}

/// Reads the reference's `AGENT_IDENTITY_RULES_JSON`: a JSON array of rules. An error names the
/// rule (by id, or by position when it has none) and the field.
///
/// ```
/// let rules = identity_core::parse_rules_json(
///     r#"[{"id":"r1","description":"","credentialRef":"c","credentialKind":"fixed","priority":1}]"#,
/// )?;
/// assert_eq!(rules[0].id, "r1");
///
/// let err = identity_core::parse_rules_json(r#"[{"id":"r1","credentialRef":"c","matchUserID":"x"}]"#)
///     .unwrap_err();
/// assert!(err.to_string().starts_with("rules[0] (`r1`)"));
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
pub fn parse_rules_json(json: &str) -> Result<Vec<RoutingRule>, ConfigError> {
    parse_json_array("rules", json)
}

/// Reads the reference's `AGENT_IDENTITY_CREDENTIALS_JSON`: a JSON array of credentials (without
/// secrets). An error names the credential and the field.
///
/// ```
/// let creds = identity_core::parse_credentials_json(
///     r#"[{"id":"c1","kind":"fixed","name":"n","scope":"read","status":"active","ref":"r1"}]"#,
/// )?;
/// assert_eq!(creds[0].reference.as_str(), "r1");
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
pub fn parse_credentials_json(json: &str) -> Result<Vec<Credential>, ConfigError> {
    parse_json_array("credentials", json)
}

fn parse_json_array<T: DeserializeOwned>(what: &str, json: &str) -> Result<Vec<T>, ConfigError> {
    let items: Vec<Value> = match serde_json::from_str(json) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(ConfigError::new(what, None, "must be a JSON array")),
        Err(err) => {
            return Err(ConfigError::new(
                what,
                None,
                format!("is not valid JSON: {err}"),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
            T::deserialize(item).map_err(|err| {
                let location = match id {
                    Some(id) => format!("{what}[{index}] (`{id}`)"),
                    None => format!("{what}[{index}]"),
                };
                // A nested `ConfigError` already names the item; keep its field and problem.
                ConfigError::new(location, None, err.to_string())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_examples_load_unchanged() {
        let rules = parse_rules_json(
            r#"[
            {"id":"rule-alice","credentialRef":"vault:openai/user-alice-slot","priority":20,
             "matchUserId":"user-alice","matchResourceKind":"personal","matchProvider":"openai"},
            {"id":"rule-write","description":"Write rule","credentialRef":"cred-write-ref",
             "credentialKind":"fixed","priority":20,"matchResourceKind":"shared","matchAction":"write"},
            {"id":"rule-mig","description":"","credentialRef":"ro","credentialKind":"fixed",
             "priority":55,"matchPhase":["dry-run","verify"],"readOnly":true,
             "matchSpiffeId":"spiffe://acme/agent"}
        ]"#,
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[1].match_action, Some(OneOrMany::One("write".into())));
        assert_eq!(
            rules[2].match_phase.as_ref().unwrap().as_slice(),
            [MigrationPhase::DryRun, MigrationPhase::Verify]
        );
        assert!(rules[2].read_only);
    }

    #[test]
    fn bad_input_names_the_rule() {
        let err = parse_rules_json(
            r#"[{"id":"ok","credentialRef":"c","priority":1},{"credentialRef":"c"}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("rules[1]:"), "{err}");
        assert!(err.contains("missing field `id`"), "{err}");
        let err = parse_rules_json(r#"[{"id":"r","credentialRef":"c","priority":"high"}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("rules[0] (`r`)"), "{err}");
        let err = parse_rules_json(r#"[{"id":"r","credentialRef":"c","matchAction":["read",3]}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rules[0] (`r`)"), "{err}");
        assert!(
            parse_rules_json(r#"{"id":"r"}"#)
                .unwrap_err()
                .to_string()
                .contains("JSON array")
        );
        assert!(
            parse_rules_json("[")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn credentials_errors_name_the_credential_and_field() {
        let err = parse_credentials_json(
            r#"[{"id":"c1","kind":"fixed","status":"active","ref":"r","expiresAt":"soon"}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("credentials[0] (`c1`)"), "{err}");
        assert!(err.contains("field `expiresAt`"), "{err}");
    }
}
