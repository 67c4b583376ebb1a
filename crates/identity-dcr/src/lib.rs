//! Authorization server discovery and dynamic client registration, for agents that meet
//! protected resources and authorization servers nobody configured in advance.
//!
//! - Discovery ([`Dcr::discover`]): RFC 8414 metadata (with the path-insertion rule), OpenID
//!   discovery as a fallback, the `issuer` in the answer equal to the one asked for; RFC 9728
//!   protected-resource metadata ([`Dcr::discover_resource`]), also from the `resource_metadata`
//!   of a 401's challenge ([`resource_metadata_from_challenge`]).
//! - Registration (RFC 7591, [`Dcr::register`]) and its management (RFC 7592: [`Dcr::read`],
//!   [`Dcr::update`], [`Dcr::delete`]), with an initial access token where the server demands
//!   one.
//! - A [`ClientRegistry`]: one client per (issuer, profile), registered once however many callers
//!   ask at once, kept behind [`ClientPersistence`].
//! - A [`DcrCredentialStore`]: slots whose credential is a `client_credentials` access token from
//!   such a client, cached until expiry, the client registered again after `invalid_client`.
//!
//! Everything a server hands over is distrusted ([`FetchPolicy`]): HTTPS only (plain HTTP only to
//! loopback, and only when allowed), no private, link-local or cloud-metadata address (checked on
//! every resolved address), no redirects, bounded answers and time, no endpoint with another
//! scheme. A hostile server can make a call fail, and nothing else.
//!
//! Clients are kept in memory ([`MemoryPersistence`]) or in a file whose secrets are sealed with
//! AES-256-GCM under a rotating [`Keyring`] ([`FilePersistence`]).
//!
//! How a client comes to be at a server follows the MCP authorization specification
//! (2026-07-28): a client registered in advance for that issuer, else a Client ID Metadata
//! Document where the server accepts them, else dynamic registration ([`ClientProfile`]).
//!
//! The crate has no features.
//!
//! ```
//! use identity_dcr::{Dcr, FetchPolicy};
//!
//! let dcr = Dcr::new(FetchPolicy::default())?;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // Discovery refuses a plain-http issuer before any request.
//! let err = dcr.discover("http://as.example.com").await.unwrap_err();
//! assert!(err.to_string().contains("https"));
//! # });
//! # Ok::<(), identity_core::Error>(())
//! ```

mod discovery;
mod fetch;
mod file;
mod registration;
mod registry;
mod store;

use identity_core::Error;

pub use discovery::{
    AuthorizationServerMetadata, ProtectedResourceMetadata, resource_metadata_from_challenge,
};
pub use fetch::FetchPolicy;
pub use file::{FilePersistence, Keyring, SealedBox, read_private_file, write_private_file};
pub use registration::{ClientMetadata, RegisteredClient};
pub use registry::{
    ClientKey, ClientPersistence, ClientProfile, ClientRegistry, MemoryPersistence,
};
pub use store::{DcrCredentialStore, DcrSlot, Target};

/// The backend name in errors and audit events.
const BACKEND: &str = "dcr";

/// Discovery, registration and management, under one [`FetchPolicy`].
///
/// ```
/// let dcr = identity_dcr::Dcr::new(identity_dcr::FetchPolicy::default().allow_http_loopback(true))?;
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dcr {
    http: fetch::SafeHttp,
    discovery: discovery::Discovery,
}

impl Dcr {
    /// A client following `policy` for every request.
    ///
    /// ```
    /// let dcr = identity_dcr::Dcr::new(identity_dcr::FetchPolicy::default())?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(policy: FetchPolicy) -> Result<Self, Error> {
        let http = fetch::SafeHttp::new(policy)?;
        Ok(Self {
            discovery: discovery::Discovery { http: http.clone() },
            http,
        })
    }

    /// The metadata of the authorization server `issuer` (RFC 8414, then OpenID discovery).
    ///
    /// ```no_run
    /// # async fn example(dcr: identity_dcr::Dcr) -> Result<(), identity_core::Error> {
    /// let server = dcr.discover("https://login.example.com").await?;
    /// # Ok(()) }
    /// ```
    pub async fn discover(&self, issuer: &str) -> Result<AuthorizationServerMetadata, Error> {
        self.discovery.authorization_server(issuer).await
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
        self.discovery
            .protected_resource(resource, metadata_url)
            .await
    }
}
