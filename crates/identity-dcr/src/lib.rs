//! Authorization server discovery and dynamic client registration, for agents that meet
//! protected resources and authorization servers nobody configured in advance.
//!
//! - Discovery ([`Dcr::discover`], [`Dcr::discover_resource`]), through `identity_http`: RFC
//!   8414 metadata (with the path-insertion rule), OpenID discovery as a fallback, the `issuer`
//!   in the answer equal to the one asked for; RFC 9728 protected-resource metadata.
//! - Registration (RFC 7591, [`Dcr::register`]) and its management (RFC 7592: [`Dcr::read`],
//!   [`Dcr::update`], [`Dcr::delete`]), with an initial access token where the server demands
//!   one.
//! - A [`ClientRegistry`]: one client per (issuer, profile), registered once however many callers
//!   ask at once, kept behind [`ClientPersistence`].
//! - A [`DcrCredentialStore`]: slots whose credential is a `client_credentials` access token from
//!   such a client, cached until expiry, the client registered again after `invalid_client`.
//!
//! Everything a server hands over is distrusted: every call goes through
//! [`identity_http::HttpClient`] under an [`identity_http::OutboundPolicy`] (HTTPS only, plain
//! HTTP only to loopback and only when allowed, no private, link-local or cloud-metadata address
//! checked on every resolved address, no redirects, bounded answers and time, no endpoint with
//! another scheme). A hostile server can make a call fail, and nothing else.
//!
//! Clients are kept in memory ([`MemoryPersistence`]), in a file whose secrets are sealed with
//! AES-256-GCM under a rotating [`identity_seal::Keyring`] ([`FilePersistence`]), or in a
//! shared state (Vault KV v2, Redis), sealed the same way and shared by replicas
//! ([`SharedClients`]), where a registration is made under a lease so that replicas register
//! once.
//!
//! How a client comes to be at a server follows the MCP authorization specification
//! (2026-07-28): a client registered in advance for that issuer, else a Client ID Metadata
//! Document where the server accepts them, else dynamic registration ([`ClientProfile`]).
//!
//! Features: `testing` (the conformance suite every [`ClientPersistence`] passes, [`testing`]).
//!
//! ```
//! use identity_dcr::Dcr;
//! use identity_http::OutboundPolicy;
//!
//! let dcr = Dcr::new(OutboundPolicy::default())?;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // Discovery refuses a plain-http issuer before any request.
//! let err = dcr.discover("http://as.example.com").await.unwrap_err();
//! assert!(err.to_string().contains("https"));
//! # });
//! # Ok::<(), identity_core::Error>(())
//! ```

mod config;
mod file;
mod registration;
mod registry;
mod shared;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

use identity_core::Error;
use identity_http::{
    AuthorizationServerMetadata, HttpClient, OutboundPolicy, ProtectedResourceMetadata,
};

pub use config::{ClientChoice, DcrSlotConfig, DcrStoreConfig};
pub use file::FilePersistence;
pub use registration::{ClientMetadata, RegisteredClient};
pub use registry::{
    ClientKey, ClientPersistence, ClientProfile, ClientRegistry, MemoryPersistence,
};
pub use shared::SharedClients;
pub use store::{DcrCredentialStore, DcrSlot, Target};

/// The backend name in errors and audit events.
const BACKEND: &str = "dcr";

/// Discovery, registration and management, under one [`OutboundPolicy`].
///
/// ```
/// let dcr = identity_dcr::Dcr::new(identity_http::OutboundPolicy::default().allow_http_loopback(true))?;
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dcr {
    http: HttpClient,
}

impl Dcr {
    /// A client following `policy` for every request.
    ///
    /// ```
    /// let dcr = identity_dcr::Dcr::new(identity_http::OutboundPolicy::default())?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(policy: OutboundPolicy) -> Result<Self, Error> {
        Ok(Self::with_client(HttpClient::new(policy)?))
    }

    /// Discovery and registration through `http` (shared with the caller's other calls).
    ///
    /// ```
    /// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default())?;
    /// let dcr = identity_dcr::Dcr::with_client(http);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_client(http: HttpClient) -> Self {
        Self { http }
    }

    /// The HTTP client, for the caller's other calls to the same servers.
    ///
    /// ```
    /// let dcr = identity_dcr::Dcr::new(identity_http::OutboundPolicy::default())?;
    /// assert!(!dcr.http().policy().allows_http_loopback());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The metadata of the authorization server `issuer` (RFC 8414, then OpenID discovery).
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr) -> Result<(), identity_core::Error> {
    /// let server = dcr.discover("https://login.example.com").await?;
    /// # Ok(()) }
    /// ```
    pub async fn discover(&self, issuer: &str) -> Result<AuthorizationServerMetadata, Error> {
        self.http.discover(issuer).await
    }

    /// The metadata of protected resource `resource` as a client meets it: from the
    /// `resource_metadata` of the 401 a request without a token gets, else from its
    /// well-known URL ([`HttpClient::find_resource`](identity_http::HttpClient::find_resource)).
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr) -> Result<(), identity_core::Error> {
    /// let resource = dcr.find_resource("https://mcp.example.com/mcp").await?;
    /// # Ok(()) }
    /// ```
    pub async fn find_resource(&self, resource: &str) -> Result<ProtectedResourceMetadata, Error> {
        self.http.find_resource(resource).await
    }

    /// The metadata of protected resource `resource` (RFC 9728), from its well-known URL or from
    /// `metadata_url` (the `resource_metadata` of a 401's challenge).
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr) -> Result<(), identity_core::Error> {
    /// let resource = dcr.discover_resource("https://mcp.example.com/mcp", None).await?;
    /// let issuer = &resource.authorization_servers[0];
    /// # Ok(()) }
    /// ```
    pub async fn discover_resource(
        &self,
        resource: &str,
        metadata_url: Option<&str>,
    ) -> Result<ProtectedResourceMetadata, Error> {
        self.http.discover_resource(resource, metadata_url).await
    }
}
