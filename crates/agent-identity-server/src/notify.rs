//! Notifications to people: a webhook that receives one JSON body per event (a budget's soft
//! threshold reached, a call held for approval, a break-glass pass), in a shape a chat tool's incoming webhook takes (`text`), sent through
//! the one outbound HTTP layer and never waited for by the request that caused it.

use std::sync::Arc;
use std::time::Duration;

use agent_identity::identity_approval::{Approval, ApprovalNotifier};
use agent_identity::identity_budget::BudgetNotifier;
use agent_identity::identity_http::{HttpClient, OutboundPolicy};
use agent_identity::{ConfigError, OffsetDateTime, format_rfc3339};
use serde::Deserialize;
use serde_json::json;

/// The `[notifications]` section.
///
/// ```
/// let section: agent_identity_server::notify::NotificationSettings =
///     toml::from_str("webhook_url = \"https://hooks.example.com/agent-identity\"\n").unwrap();
/// assert!(!section.allow_private);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// Where each notification is POSTed (HTTPS; plain HTTP only to this machine when allowed).
    pub webhook_url: String,
    /// Allow a webhook at a private address (a chat server inside the network).
    #[serde(default)]
    pub allow_private: bool,
    /// Allow a plain-HTTP webhook on a loopback address (tests, a local relay).
    #[serde(default)]
    pub allow_http_loopback: bool,
}

/// A webhook that receives notifications.
#[derive(Clone)]
pub struct Webhook {
    client: Arc<HttpClient>,
    url: url::Url,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A webhook URL often holds its own secret (Slack's, Teams'): never shown.
        f.debug_struct("Webhook").finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook of `settings`, its URL checked against the outbound policy; an error names
    /// the field.
    ///
    /// ```
    /// use agent_identity_server::notify::{NotificationSettings, Webhook};
    /// let settings: NotificationSettings = toml::from_str("webhook_url = \"http://hooks.example.com/x\"\n").unwrap();
    /// let err = Webhook::new(&settings).unwrap_err();
    /// assert!(err.to_string().contains("webhook_url"));
    /// ```
    pub fn new(settings: &NotificationSettings) -> Result<Self, ConfigError> {
        let policy = OutboundPolicy::default()
            .allow_http_loopback(settings.allow_http_loopback)
            .allow_private(settings.allow_private)
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .max_body(64 * 1024);
        let located =
            |problem: String| ConfigError::new("notifications", Some("webhook_url"), problem);
        let url = policy
            .check_url(&settings.webhook_url, "webhook_url")
            .map_err(|err| located(err.to_string()))?;
        let client = HttpClient::new(policy).map_err(|err| located(err.to_string()))?;
        Ok(Self {
            client: Arc::new(client),
            url,
        })
    }

    /// POSTs `event` in the background; a failure is logged, never retried.
    pub fn send(&self, event: serde_json::Value) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("a notification was dropped: no runtime to send it on");
            return;
        };
        let webhook = self.clone();
        runtime.spawn(async move {
            let request = webhook
                .client
                .request(reqwest::Method::POST, &webhook.url)
                .json(&event);
            match webhook.client.send(request, "notification webhook").await {
                Ok(answer) if (200..300).contains(&answer.status) => {}
                Ok(answer) => {
                    tracing::warn!(
                        status = answer.status,
                        "the notification webhook refused a notification"
                    );
                }
                Err(err) => tracing::warn!(error = %err, "a notification could not be sent"),
            }
        });
    }
}

impl BudgetNotifier for Webhook {
    fn soft_limit_reached(&self, budget: &str, key: &str, remaining: u32, requests: u32) {
        self.send(json!({
            "event": "budget_soft_limit",
            "text": format!("agent-identity: budget `{budget}` for `{key}` has {remaining} of {requests} requests left"),
            "budget": budget,
            "key": key,
            "remaining": remaining,
            "requests": requests,
            "at": format_rfc3339(OffsetDateTime::now_utc()),
        }));
    }

    fn spend_soft_limit_reached(&self, budget: &str, key: &str, spent_usd: f64, max_usd: f64) {
        self.send(json!({
            "event": "budget_spend_soft_limit",
            "text": format!("agent-identity: `{key}` has spent ${spent_usd:.4} of ${max_usd:.2} today under budget `{budget}`"),
            "budget": budget,
            "key": key,
            "spentUsd": spent_usd,
            "maxUsd": max_usd,
            "at": format_rfc3339(OffsetDateTime::now_utc()),
        }));
    }
}

impl ApprovalNotifier for Webhook {
    fn pending(&self, approval: &Approval) {
        self.send(json!({
            "event": "approval_pending",
            "text": format!(
                "agent-identity: {} needs {} approval(s): approve or reject `{}` before {}",
                approval.call.describe(),
                approval.approvals_missing(),
                approval.id,
                format_rfc3339(approval.expires_at),
            ),
            "approval": approval_json(approval),
        }));
    }

    fn break_glass(&self, approval: &Approval) {
        let vote = approval.break_glass.as_ref();
        self.send(json!({
            "event": "break_glass",
            "text": format!(
                "agent-identity: BREAK-GLASS by `{}`: {} passed without approval. Justification: {}",
                vote.map_or("?", |vote| vote.by.as_str()),
                approval.call.describe(),
                vote.and_then(|vote| vote.note.as_deref()).unwrap_or(""),
            ),
            "approval": approval_json(approval),
        }));
    }
}

/// What a notification says of an approval: never its signed statement.
pub(crate) fn approval_json(approval: &Approval) -> serde_json::Value {
    json!({
        "id": approval.id,
        "state": approval.state,
        "summary": approval.call.describe(),
        "call": approval.call,
        "requester": approval.requester,
        "approvalsNeeded": approval.approvals_missing(),
        "approvers": approval.demand.approvers,
        "breakGlassAllowed": approval.demand.break_glass,
        "approvals": approval.approvals,
        "rejection": approval.rejection,
        "breakGlass": approval.break_glass,
        "createdAt": format_rfc3339(approval.created_at),
        "expiresAt": format_rfc3339(approval.expires_at),
    })
}
