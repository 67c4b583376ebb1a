//! The identity tools: what an agent may ask of its identity through MCP. None approves
//! anything, none returns a secret.

use std::sync::Arc;

use agent_identity::{RequestContext, ResourceKind};
use axum::response::Response;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext as McpContext;
use rmcp::{RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Caller;

/// The identity tools of one session, over one configuration.
#[derive(Clone)]
pub struct IdentityTools {
    state: Arc<AppState>,
    /// Over stdio, the user the process acts for; over HTTP, `None`: the bearer token's
    /// subject, on each request.
    local_user: Option<String>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for IdentityTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityTools")
            .field("local_user", &self.local_user)
            .finish_non_exhaustive()
    }
}

/// Who a call acts for.
struct Acting {
    user: String,
    caller: String,
    workload: Option<String>,
    transport: &'static str,
}

impl Acting {
    /// False for a rule bound to another user or workload: it is theirs, and showing it (its
    /// `matchUserId` among the rest) would name who else the deployment serves.
    fn may_see(&self, rule: &agent_identity::RoutingRule) -> bool {
        rule.match_user_id
            .as_deref()
            .is_none_or(|user| user == self.user)
            && rule
                .match_spiffe_id
                .as_deref()
                .is_none_or(|id| self.workload.as_deref() == Some(id))
    }
}

/// `connect`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ConnectArgs {
    /// The provider to connect, as `connections` names it (e.g. `github`).
    pub(crate) provider: String,
    /// Scopes to ask for beyond the provider's own, space-separated.
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

/// `explain`'s arguments: the request to explain.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExplainArgs {
    /// The provider the request is for (e.g. `openai`, `github`).
    pub(crate) provider: String,
    /// The model, when it matters.
    #[serde(default)]
    pub(crate) model: Option<String>,
    /// The action (e.g. `read`, `chat`).
    #[serde(default)]
    pub(crate) action: Option<String>,
    /// The resource.
    #[serde(default)]
    pub(crate) resource_id: Option<String>,
    /// `personal` (the user's own) or `shared`.
    #[serde(default)]
    pub(crate) resource_kind: Option<String>,
}

/// A refusal as the model sees it: the sidecar's error code and message.
fn refusal(code: &str, message: &str) -> CallToolResult {
    CallToolResult::structured_error(json!({ "code": code, "error": message }))
}

/// The JSON body of an HTTP refusal, as a tool's refusal.
async fn refused(response: Response) -> CallToolResult {
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    CallToolResult::structured_error(body)
}

#[tool_router]
impl IdentityTools {
    /// The tools over `state`, acting for `local_user` (stdio) or for each request's bearer
    /// token's subject (HTTP, `None`).
    pub fn new(state: Arc<AppState>, local_user: Option<String>) -> Self {
        // Built once: a router's tool schemas are generated when it is made, and over HTTP a
        // session is made per request.
        static ROUTER: std::sync::OnceLock<ToolRouter<IdentityTools>> = std::sync::OnceLock::new();
        Self {
            state,
            local_user,
            tool_router: ROUTER.get_or_init(Self::tool_router).clone(),
        }
    }

    fn acting(&self, context: &McpContext<RoleServer>) -> Result<Acting, Box<CallToolResult>> {
        if let Some(user) = &self.local_user {
            return Ok(Acting {
                user: user.clone(),
                caller: "local process".into(),
                workload: None,
                transport: "stdio",
            });
        }
        let caller = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>());
        match caller {
            Some(Caller {
                user_id: Some(user),
                name,
                workload,
                ..
            }) => Ok(Acting {
                user: user.clone(),
                caller: name.clone(),
                workload: workload.as_ref().map(ToString::to_string),
                transport: "http",
            }),
            _ => Err(Box::new(refusal(
                "unauthenticated",
                "the tools act for the user a bearer token names; this request names none",
            ))),
        }
    }

    #[tool(
        description = "Who this session acts for: the user, the caller as authenticated, and the workload when one proved itself."
    )]
    async fn whoami(&self, context: McpContext<RoleServer>) -> CallToolResult {
        match self.acting(&context) {
            Ok(acting) => CallToolResult::structured(json!({
                "userId": acting.user,
                "caller": acting.caller,
                "workload": acting.workload,
                "transport": acting.transport,
            })),
            Err(refused) => *refused,
        }
    }

    #[tool(
        description = "The user's connections to each provider: connected or not, expired, refreshable, the scope granted. Never a token."
    )]
    async fn connections(&self, context: McpContext<RoleServer>) -> CallToolResult {
        let acting = match self.acting(&context) {
            Ok(acting) => acting,
            Err(refused) => return *refused,
        };
        let Some(endpoints) = &self.state.oauth else {
            return CallToolResult::structured(json!({ "userId": acting.user, "connections": [] }));
        };
        match crate::app::oauth::connection_statuses(endpoints, &acting.user).await {
            Ok(listed) => {
                CallToolResult::structured(json!({ "userId": acting.user, "connections": listed }))
            }
            Err(err) => refusal("provider_unavailable", &err.to_string()),
        }
    }

    #[tool(
        description = "A link for the user to open to connect a provider (OAuth consent), with the scopes asked. The agent passes it on; it grants nothing by itself."
    )]
    async fn connect(
        &self,
        context: McpContext<RoleServer>,
        Parameters(args): Parameters<ConnectArgs>,
    ) -> CallToolResult {
        let acting = match self.acting(&context) {
            Ok(acting) => acting,
            Err(refused) => return *refused,
        };
        let Some(endpoints) = &self.state.oauth else {
            return refusal(
                "oauth_not_configured",
                "no store of type \"oauth\" is configured",
            );
        };
        let scopes: Option<Vec<String>> = args
            .scope
            .as_deref()
            .map(|scope| scope.split_whitespace().map(str::to_owned).collect());
        match crate::app::oauth::connect::mint_link(
            endpoints,
            &args.provider,
            &acting.user,
            scopes.as_deref(),
            None,
        ) {
            Ok(mut link) => {
                link["provider"] = json!(args.provider);
                link["scope"] = json!(args.scope);
                CallToolResult::structured(link)
            }
            Err(response) => refused(response).await,
        }
    }

    #[tool(
        description = "The rules that can give this user credentials, in the order they are considered: which provider, model and action each matches, and the credential it names (a name, never a secret)."
    )]
    async fn credentials(&self, context: McpContext<RoleServer>) -> CallToolResult {
        let acting = match self.acting(&context) {
            Ok(acting) => acting,
            Err(refused) => return *refused,
        };
        let rules: Vec<Value> = self
            .state
            .router
            .rules()
            .filter(|rule| acting.may_see(rule))
            .map(|rule| {
                let mut shown = serde_json::to_value(rule).unwrap_or_else(|_| json!({}));
                // What a rule asks of approvers is the approvers' business.
                if let Some(object) = shown.as_object_mut() {
                    object.remove("requireApproval");
                    object.insert(
                        "requiresApproval".into(),
                        json!(rule.require_approval.is_some()),
                    );
                }
                shown
            })
            .collect();
        CallToolResult::structured(json!({ "rules": rules }))
    }

    #[tool(
        description = "Which rule would decide a request, and why each rule before it does not match. Nothing is resolved: the store and the policies, approvals and budgets still decide at the call."
    )]
    async fn explain(
        &self,
        context: McpContext<RoleServer>,
        Parameters(args): Parameters<ExplainArgs>,
    ) -> CallToolResult {
        let acting = match self.acting(&context) {
            Ok(acting) => acting,
            Err(refused) => return *refused,
        };
        let kind = match args.resource_kind.as_deref() {
            None | Some("shared") => ResourceKind::Shared,
            Some("personal") => ResourceKind::Personal,
            Some(other) => {
                return refusal(
                    "invalid_request",
                    &format!("`resourceKind` is `{other}`: use `personal` or `shared`"),
                );
            }
        };
        let mut builder = RequestContext::builder()
            .user_id(&acting.user)
            .resource_id(args.resource_id.as_deref().unwrap_or("-"))
            .resource_kind(kind)
            .provider(&args.provider)
            .model(args.model.as_deref().unwrap_or("-"))
            .action(args.action.as_deref().unwrap_or("read"))
            .trace_id("mcp-explain");
        if let Some(workload) = &acting.workload {
            builder = builder.spiffe_id(workload);
        }
        let request = match builder.build() {
            Ok(request) => request,
            Err(err) => return refusal("invalid_request", &err.to_string()),
        };
        let visible: std::collections::HashSet<&str> = self
            .state
            .router
            .rules()
            .filter(|rule| acting.may_see(rule))
            .map(|rule| rule.id.as_str())
            .collect();
        // A rule bound to someone else never matches this user: leaving it out changes no
        // decision.
        let verdicts: Vec<_> = self
            .state
            .router
            .verdicts(&request)
            .into_iter()
            .filter(|verdict| visible.contains(&*verdict.rule_id))
            .collect();
        let decider = verdicts.iter().find(|verdict| verdict.matched);
        let credential = decider.and_then(|verdict| {
            self.state
                .router
                .rules()
                .find(|rule| *rule.id == *verdict.rule_id)
                .map(|rule| rule.credential_ref.clone())
        });
        CallToolResult::structured(json!({
            "userId": acting.user,
            "decidingRule": decider.map(|verdict| verdict.rule_id.clone()),
            "credentialRef": credential,
            "rules": verdicts,
        }))
    }

    #[tool(
        description = "The state of this user's calls held for approval: pending, approved, rejected or expired, and who must approve. Approving is for people, not for tools."
    )]
    async fn approval_status(&self, context: McpContext<RoleServer>) -> CallToolResult {
        let acting = match self.acting(&context) {
            Ok(acting) => acting,
            Err(refused) => return *refused,
        };
        let Some(approvals) = &self.state.approvals else {
            return CallToolResult::structured(json!({ "approvals": [] }));
        };
        match approvals.list().await {
            Ok(all) => {
                let own: Vec<Value> = all
                    .iter()
                    .filter(|approval| approval.call.user_id == acting.user)
                    .map(crate::notify::approval_json)
                    .collect();
                CallToolResult::structured(json!({ "approvals": own }))
            }
            Err(err) => refusal("approvals_unavailable", &err.to_string()),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for IdentityTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "agent-identity",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Identity tools: who this session acts for, the user's connections, links to connect a provider, the rules that give credentials and why, and the state of held calls. None returns a secret or approves anything.",
            )
    }
}
