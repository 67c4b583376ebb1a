//! The injection proxy of agent-identity: an agent in any language calls
//! `/proxy/<upstream>/<path>` as it would call the upstream itself, and the call goes on with
//! the credential the router chose put in. The secret reaches the upstream and nothing else:
//! not the agent, its model, a log or an answer.
//!
//! For each call:
//! 1. the upstream must be configured ([`UpstreamConfig`]), the method and path allowed, the
//!    path clean (no `..`, no encoded slash);
//! 2. the routing context comes from the authenticated [`Caller`] (its user binding and its own
//!    token) and the `x-agent-identity-user`, `-resource`, `-resource-kind`, `-model`,
//!    `-action` and `-trace` headers, with the upstream's provider and defaults; the action is
//!    `read` for `GET` and `HEAD`, `write` otherwise;
//! 3. the router resolves it exactly as `/api/resolve` does, with every store;
//! 4. the caller's own credentials (`authorization`, `cookie`, `x-api-key`, ...), the context
//!    headers and hop-by-hop headers are removed, the credential is injected ([`Injection`]),
//!    and the body streams on, cut at the upstream's cap;
//! 5. the answer streams back as it comes (server-sent events included), without hop-by-hop
//!    headers and without any header that carries the secret. Redirects are not followed.
//!
//! Every proxied call is an audit event on target `agent_identity::audit` when it ends
//! (upstream, method, path without its query, rule, credential id, status, bytes each way,
//! whether the answer was passed back whole, duration), and is told to a [`CallObserver`] if
//! one is set (metrics per upstream).
//!
//! ```
//! use std::sync::Arc;
//! use identity_proxy::{Proxy, Upstream, UpstreamConfig};
//!
//! let config: UpstreamConfig = serde_json::from_value(serde_json::json!({
//!     "base_url": "https://api.openai.com/v1", "provider": "openai",
//!     "methods": ["POST"], "path_prefixes": ["/chat/completions"]
//! }))?;
//! let router = identity_router::Router::builder()
//!     .default_store(identity_memory::MemoryCredentialStore::new()).build()?;
//! let proxy = Proxy::new(Arc::new(router), [Upstream::new("openai", config)?]);
//! assert!(proxy.upstream("openai").is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod forward;
mod record;
mod usage;

pub use config::{Injection, Upstream, UpstreamConfig};
pub use forward::{CONTEXT_HEADER_PREFIX, Caller, Proxy, ProxyError};
pub use record::{CallObserver, ProxiedCall};
