//! MCP clients authorized end to end: an agent that calls an OAuth-protected MCP server with a
//! user's token, kept and refreshed by this workspace's stores.
//!
//! The MCP authorization flow is assembled from the workspace's crates:
//!
//! 1. **Discovery**: the MCP server's protected resource metadata (RFC 9728), then its
//!    authorization server's metadata (RFC 8414): a provider of preset `dcr` whose `resource`
//!    is the MCP server's URL (`identity_oauth::Provider::registered` with
//!    `identity_dcr::Target::Resource`).
//! 2. **The client**: one registered in advance, else a Client ID Metadata Document, else
//!    dynamic client registration (RFC 7591), kept in the client registry (once across
//!    replicas).
//! 3. **Consent**: the user opens the authorize URL (PKCE `S256`, the resource as the RFC 8707
//!    resource indicator), and the code is exchanged for tokens kept in the
//!    [`DelegatedTokenStore`].
//! 4. **The calls**: [`AuthorizedClient`] is an rmcp transport client. Every request carries
//!    the user's access token, refreshed when it nears expiry. A 401 from the server marks the
//!    token refused and tries once more with a refreshed one; when the token cannot be
//!    refreshed, the call fails with [`Error::ConsentRequired`]: the user must connect again.
//!
//! What this crate does not do: run the browser step (the application sends the user to the
//! authorize URL, as the sidecar's connect links do), or authorize servers that are not OAuth
//! protected resources.
//!
//! ```
//! use std::sync::Arc;
//! use identity_mcp::McpAuthorization;
//! use identity_oauth::{DelegatedTokenStore, MemoryTokens};
//!
//! let store = Arc::new(DelegatedTokenStore::new(Arc::new(MemoryTokens::default())));
//! // A store that does not serve the provider is refused at once.
//! let err = McpAuthorization::new(store, "crm", "alice").unwrap_err();
//! assert!(err.to_string().contains("crm"), "{err}");
//! ```

mod client;

use std::fmt;
use std::sync::Arc;

use identity_core::{Error, Secret};
use identity_oauth::DelegatedTokenStore;

pub use client::{AuthorizedClient, AuthorizedError};

/// Whose token an MCP client presents, and where it is kept: `user`'s connection to
/// `provider` in a [`DelegatedTokenStore`].
#[derive(Clone)]
pub struct McpAuthorization {
    store: Arc<DelegatedTokenStore>,
    provider: String,
    user: String,
}

impl fmt::Debug for McpAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpAuthorization")
            .field("provider", &self.provider)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl McpAuthorization {
    /// `user`'s connection to `provider`, which `store` must serve by OAuth.
    pub fn new(
        store: Arc<DelegatedTokenStore>,
        provider: impl Into<String>,
        user: impl Into<String>,
    ) -> Result<Self, Error> {
        let provider = provider.into();
        match store.provider_named(&provider) {
            Some(served) if served.is_oauth() => {}
            Some(_) => {
                return Err(Error::InvalidArgument {
                    argument: "provider",
                    problem: format!("`{provider}` takes an API token, not an OAuth flow"),
                });
            }
            None => {
                return Err(Error::InvalidArgument {
                    argument: "provider",
                    problem: format!("`{provider}` is not served by this token store"),
                });
            }
        }
        Ok(Self {
            store,
            provider,
            user: user.into(),
        })
    }

    /// The provider.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The access token to present now, refreshed first when it nears expiry.
    ///
    /// ```no_run
    /// # async fn example(authorization: identity_mcp::McpAuthorization) -> Result<(), identity_core::Error> {
    /// let token = authorization.access_token().await?;
    /// # Ok(()) }
    /// ```
    pub async fn access_token(&self) -> Result<Secret, Error> {
        self.store.access_token(&self.user, &self.provider).await
    }

    /// Notes that the server refused `token`: the next [`McpAuthorization::access_token`]
    /// refreshes it, or asks for consent when it cannot be refreshed.
    ///
    /// ```no_run
    /// # async fn example(authorization: identity_mcp::McpAuthorization, token: identity_core::Secret) -> Result<(), identity_core::Error> {
    /// authorization.refused(&token).await?;
    /// # Ok(()) }
    /// ```
    pub async fn refused(&self, token: &Secret) -> Result<(), Error> {
        self.store.refused(&self.user, &self.provider, token).await
    }

    /// The consent this connection needs again, as the error a call fails with.
    fn consent_required(&self, detail: &str) -> Error {
        Error::ConsentRequired {
            backend: "mcp",
            provider: self.provider.clone(),
            scopes: Vec::new(),
            detail: detail.to_owned(),
        }
    }
}
