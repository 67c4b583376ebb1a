//! `DcrCredentialStore`: access tokens for slots, obtained with `client_credentials` by clients
//! this process registered itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, OffsetDateTime,
    RequestContext, Secret, async_trait,
};
use identity_http::{ClientAuth, ClientCredentials, Form, Retry, TokenCache};
use tracing::{instrument, warn};

use crate::BACKEND;
use crate::registration::RegisteredClient;
use crate::registry::{ClientProfile, ClientRegistry};

/// Where a slot's authorization server is.
#[derive(Debug, Clone)]
pub enum Target {
    /// This issuer.
    Issuer(String),
    /// The first authorization server a protected resource names in its RFC 9728 metadata; the
    /// token is requested for that resource (RFC 8707 `resource`).
    Resource(String),
}

/// One slot: a ref whose credential is an access token for `target`, with `scopes`, obtained by
/// the client registered for `profile`.
#[derive(Debug, Clone)]
pub struct DcrSlot {
    /// The ref rules name.
    pub reference: CredentialRef,
    /// Where the authorization server is.
    pub target: Target,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The client profile registered for it.
    pub profile: ClientProfile,
}

/// A token and when it expires.
#[derive(Clone)]
struct Cached {
    token: Secret,
    expires_at: OffsetDateTime,
}

/// Access tokens for configured slots, from clients registered at run time.
///
/// For each slot, at the first resolution: discover the authorization server (from its issuer,
/// or from the protected resource's metadata), get or register the client (one registration per
/// issuer and profile, kept by the [`ClientRegistry`]), and ask for a token with
/// `client_credentials`. Tokens are cached until 30 s before they expire (5 minutes when the
/// server gives no lifetime), one request for many concurrent callers. When the server answers `invalid_client` (the client was deleted, or
/// its secret rotated away), the client is registered again and the request made once more.
///
/// ```
/// use std::sync::Arc;
/// use identity_core::CredentialRef;
/// use identity_dcr::*;
///
/// let registry = ClientRegistry::new(Dcr::new(identity_http::OutboundPolicy::default())?, Arc::new(MemoryPersistence::default()));
/// let slot = DcrSlot {
///     reference: CredentialRef::new("crm-service")?,
///     target: Target::Issuer("https://login.example.com".into()),
///     scopes: vec!["crm:read".into()],
///     profile: ClientProfile::new("crm", ClientMetadata::service("agent", "crm:read")),
/// };
/// let store = DcrCredentialStore::new(Arc::new(registry), vec![slot]);
/// assert!(format!("{store:?}").contains("crm-service"));
/// # Ok::<(), identity_core::Error>(())
/// ```
pub struct DcrCredentialStore {
    registry: Arc<ClientRegistry>,
    slots: HashMap<CredentialRef, DcrSlot>,
    tokens: TokenCache<CredentialRef, Cached>,
}

impl fmt::Debug for DcrCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut refs: Vec<&str> = self.slots.keys().map(CredentialRef::as_str).collect();
        refs.sort_unstable();
        f.debug_struct("DcrCredentialStore")
            .field("slots", &refs)
            .finish_non_exhaustive()
    }
}

impl DcrCredentialStore {
    /// A store serving `slots`, with clients from `registry`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use identity_dcr::*;
    /// let registry = ClientRegistry::new(Dcr::new(identity_http::OutboundPolicy::default())?, Arc::new(MemoryPersistence::default()));
    /// let store = DcrCredentialStore::new(Arc::new(registry), Vec::new());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(registry: Arc<ClientRegistry>, slots: Vec<DcrSlot>) -> Self {
        Self {
            registry,
            slots: slots
                .into_iter()
                .map(|slot| (slot.reference.clone(), slot))
                .collect(),
            tokens: TokenCache::new(10_000),
        }
    }

    fn credential(slot: &DcrSlot) -> Credential {
        let mut credential = Credential::new(
            format!("dcr:{}", slot.reference),
            CredentialKind::Fixed,
            slot.reference.as_str(),
        )
        .unwrap_or_else(|_| unreachable!("the slot's ref is a valid ref"));
        credential.scope = slot.scopes.join(" ");
        credential
    }

    async fn fetch(&self, slot: &DcrSlot) -> Result<(Cached, Option<Duration>), Error> {
        let dcr = self.registry.dcr();
        let (issuer, resource) = match &slot.target {
            Target::Issuer(issuer) => (issuer.clone(), None),
            Target::Resource(resource) => {
                let metadata = dcr.find_resource(resource).await?;
                let issuer = metadata
                    .authorization_servers
                    .first()
                    .cloned()
                    .ok_or_else(|| Error::Protocol {
                        backend: BACKEND,
                        code: "invalid_metadata".into(),
                        description: Some(format!(
                            "resource `{resource}` names no authorization server"
                        )),
                    })?;
                (issuer, Some(resource.clone()))
            }
        };
        let server = dcr.discover(&issuer).await?;
        let token_endpoint = server
            .token_endpoint
            .clone()
            .ok_or_else(|| Error::Protocol {
                backend: BACKEND,
                code: "invalid_metadata".into(),
                description: Some(format!("`{issuer}` has no token_endpoint")),
            })?;
        let mut client = self.registry.get_or_create(&issuer, &slot.profile).await?;
        let mut retried = false;
        loop {
            match self
                .client_credentials(&token_endpoint, &client, slot, resource.as_deref())
                .await
            {
                Err(Error::Protocol { code, .. }) if code == "invalid_client" && !retried => {
                    warn!(issuer, client_id = %client.client_id, "the client is no longer valid; registering again");
                    self.registry.remove(&issuer, &slot.profile.name).await?;
                    client = self.registry.get_or_create(&issuer, &slot.profile).await?;
                    retried = true;
                }
                other => return other,
            }
        }
    }

    async fn client_credentials(
        &self,
        endpoint: &url::Url,
        client: &RegisteredClient,
        slot: &DcrSlot,
        resource: Option<&str>,
    ) -> Result<(Cached, Option<Duration>), Error> {
        let mut form = Form::grant("client_credentials");
        if !slot.scopes.is_empty() {
            form.push("scope", &slot.scopes.join(" "));
        }
        if let Some(resource) = resource {
            form.push("resource", resource);
        }
        let credentials = match (&client.client_secret, &slot.profile.private_key) {
            (Some(secret), _) => ClientCredentials::basic(client.client_id.clone(), secret.clone()),
            // A client without a secret (a metadata-document client, a client registered in
            // advance with a key) signs an assertion when the profile has its key.
            (None, Some(key)) => ClientCredentials::new(
                client.client_id.clone(),
                ClientAuth::PrivateKeyJwt,
                None,
                Some(key.clone()),
            )?,
            // Else it names itself in the form.
            (None, None) => ClientCredentials::public(client.client_id.clone()),
        };
        let token = self
            .registry
            .dcr()
            .http()
            .token(
                endpoint,
                &credentials,
                &form,
                Retry::default(),
                "client_credentials",
            )
            .await
            .and_then(identity_http::TokenResponse::into_bearer)
            .map_err(|err| err.into_error(BACKEND))?;
        let lifetime = self.tokens.lifetime_of(token.lifetime);
        let expires_at = OffsetDateTime::now_utc()
            .saturating_add(time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX));
        Ok((
            Cached {
                token: token.access_token,
                expires_at,
            },
            Some(lifetime),
        ))
    }
}

#[async_trait]
impl CredentialStore for DcrCredentialStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Forgets the slot's token that was refused; the next resolution asks for a new one.
    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        let (reference, secret) = (reference.clone(), secret.clone());
        self.tokens.invalidate_if(move |key, cached| {
            *key == reference && cached.token.expose_secret() == secret.expose_secret()
        });
        Ok(())
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        let Some(slot) = self.slots.get(reference) else {
            return Ok(None);
        };
        let cached = self
            .tokens
            .get_or_fetch(reference.clone(), || self.fetch(slot))
            .await
            .map_err(|err: Arc<Error>| err.duplicate())?;
        let mut credential = Self::credential(slot).with_secret(cached.token);
        credential.expires_at = Some(cached.expires_at);
        Ok(Some(credential))
    }

    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        let mut listed: Vec<Credential> = self.slots.values().map(Self::credential).collect();
        listed.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(listed)
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(self
            .list_active()
            .await?
            .into_iter()
            .filter(|c| c.kind == kind)
            .collect())
    }
}
