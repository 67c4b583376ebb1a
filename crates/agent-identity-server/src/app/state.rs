//! What the handlers share.

use std::net::SocketAddr;
use std::sync::Arc;

use agent_identity::Router;

use super::health::HealthMonitor;
use super::metrics::Metrics;
use super::settings::ServerSettings;
use crate::auth::Authenticator;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The router.
    pub router: Arc<Router>,
    /// The latest store health.
    pub health: Arc<HealthMonitor>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and listener settings.
    pub settings: Arc<ServerSettings>,
    /// Caller authentication.
    pub authenticator: Arc<Authenticator>,
    /// The address actually bound (its port is part of the accepted `Host` values).
    pub bound: SocketAddr,
    /// The `/oauth/` endpoints, when an `oauth` store is configured.
    pub oauth: super::oauth::OAuthState,
    /// The injection proxy, when upstreams are configured.
    pub proxy: Option<Arc<agent_identity::identity_proxy::Proxy>>,
    /// The permission policies and their files, when `[policies]` are configured (for
    /// `/api/authorize`, and to read the files again as they change).
    pub policies: Option<crate::config::PolicyFiles>,
    /// The approvals, when `[approvals]` are configured (for `/api/approvals`).
    pub approvals: Option<agent_identity::identity_approval::Approvals>,
    /// The pages for people, when `[web]` is configured.
    pub web: Option<Arc<super::web::Web>>,
    /// What reloads the configuration, when it comes from a file (for `POST /api/reload`).
    pub reloader: Option<std::sync::Weak<super::reload::Reloader>>,
    /// The identity tools over HTTP, when `[mcp]` is configured.
    pub mcp: Option<Arc<super::mcp::McpSettings>>,
    /// What signs attestations, when `[attestation]` is configured.
    pub attestor: Option<Arc<agent_identity::identity_attest::Attestor>>,
    /// The revocations in force, when `[revocations]` is configured.
    pub revocations: Option<agent_identity::identity_revocation::Revocations>,
}

impl AppState {
    /// Prepares authentication (fetching a JWKS now, so that a bad source fails at start) and
    /// checks the stores once, for a server bound to `bound`.
    /// (A loaded configuration gives these parts: `config::Loaded::into_state`.)
    pub async fn new(
        router: Router,
        settings: ServerSettings,
        auth: crate::auth::settings::AuthSettings,
        oauth: super::oauth::OAuthState,
        metrics: Arc<Metrics>,
        bound: SocketAddr,
    ) -> Result<Self, String> {
        let authenticator = Arc::new(Authenticator::new(auth).await?);
        let router = Arc::new(router);
        let health = HealthMonitor::start(router.clone()).await;
        Ok(Self {
            router,
            health,
            metrics,
            settings: Arc::new(settings),
            authenticator,
            bound,
            oauth,
            proxy: None,
            policies: None,
            approvals: None,
            web: None,
            reloader: None,
            mcp: None,
            attestor: None,
            revocations: None,
        })
    }

    /// With the permission policies and the approvals that govern calls.
    pub fn with_governance(
        mut self,
        policies: Option<crate::config::PolicyFiles>,
        approvals: Option<agent_identity::identity_approval::Approvals>,
    ) -> Self {
        if let (Some(files), Some(endpoints)) = (&policies, &self.oauth) {
            endpoints.govern(files.gate.clone());
        }
        self.policies = policies;
        self.approvals = approvals;
        self
    }

    /// With what reloads the configuration.
    pub fn with_reloader(mut self, reloader: std::sync::Weak<super::reload::Reloader>) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// With the attestor of resolutions asked with `?attest=true`.
    pub fn with_attestor(
        mut self,
        attestor: Option<Arc<agent_identity::identity_attest::Attestor>>,
    ) -> Self {
        self.attestor = attestor;
        self
    }

    /// With the revocations that `/api/revocations` adds to.
    pub fn with_revocations(
        mut self,
        revocations: Option<agent_identity::identity_revocation::Revocations>,
    ) -> Self {
        self.revocations = revocations;
        self
    }

    /// With the identity tools served over HTTP at `/mcp`.
    pub fn with_mcp(mut self, mcp: Option<Arc<super::mcp::McpSettings>>) -> Self {
        self.mcp = mcp;
        self
    }

    /// With the pages for people.
    pub fn with_pages(mut self, web: Option<Arc<super::web::Web>>) -> Self {
        self.web = web;
        self
    }

    /// With the injection proxy to `upstreams`, resolving with this state's router (none when
    /// `upstreams` is empty).
    pub fn with_upstreams(
        mut self,
        upstreams: Vec<agent_identity::identity_proxy::Upstream>,
    ) -> Self {
        let observer = Arc::new(super::metrics::MetricsObserver(self.metrics.clone()));
        self.proxy = (!upstreams.is_empty()).then(|| {
            Arc::new(
                agent_identity::identity_proxy::Proxy::new(self.router.clone(), upstreams)
                    .with_observer(observer),
            )
        });
        self
    }
}
