//! `DcrCredentialStore`: access tokens for slots, obtained with `client_credentials` by clients
//! this process registered itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, OffsetDateTime,
    RequestContext, Secret, async_trait,
};
use moka::future::Cache;
use serde_json::Value;
use tracing::{instrument, warn};
use url::form_urlencoded::{Serializer, byte_serialize};

use crate::BACKEND;
use crate::registration::{RegisteredClient, oauth_error};
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

#[derive(Clone)]
struct Cached {
    token: Secret,
    /// When the cached token stops being handed out (its expiry less the skew).
    fresh_until: Instant,
    expires_at: OffsetDateTime,
}

/// Access tokens for configured slots, from clients registered at run time.
///
/// For each slot, at the first resolution: discover the authorization server (from its issuer,
/// or from the protected resource's metadata), get or register the client (one registration per
/// issuer and profile, kept by the [`ClientRegistry`]), and ask for a token with
/// `client_credentials`. Tokens are cached until shortly before they expire, one request for
/// many concurrent callers. When the server answers `invalid_client` (the client was deleted, or
/// its secret rotated away), the client is registered again and the request made once more.
///
/// ```
/// use std::sync::Arc;
/// use identity_core::CredentialRef;
/// use identity_dcr::*;
///
/// let registry = ClientRegistry::new(Dcr::new(FetchPolicy::default())?, Arc::new(MemoryPersistence::default()));
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
    tokens: Cache<CredentialRef, Cached>,
    skew: Duration,
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
    /// let registry = ClientRegistry::new(Dcr::new(FetchPolicy::default())?, Arc::new(MemoryPersistence::default()));
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
            tokens: Cache::builder().max_capacity(10_000).build(),
            skew: Duration::from_secs(30),
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

    async fn fetch(&self, slot: &DcrSlot) -> Result<Cached, Error> {
        let dcr = self.registry.dcr();
        let (issuer, resource) = match &slot.target {
            Target::Issuer(issuer) => (issuer.clone(), None),
            Target::Resource(resource) => {
                let metadata = dcr.discover_resource(resource, None).await?;
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
                .client_credentials(&token_endpoint, &client, &slot.scopes, resource.as_deref())
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
        scopes: &[String],
        resource: Option<&str>,
    ) -> Result<Cached, Error> {
        let what = format!("client_credentials at {endpoint}");
        // Built in a block: the serializer is not `Send` and must not live across an await.
        let form = {
            let mut form = Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if !scopes.is_empty() {
                form.append_pair("scope", &scopes.join(" "));
            }
            if let Some(resource) = resource {
                form.append_pair("resource", resource);
            }
            form.finish()
        };
        let encode = |text: &str| byte_serialize(text.as_bytes()).collect::<String>();
        let mut request = self
            .registry
            .dcr()
            .http
            .request(reqwest::Method::POST, endpoint)
            .header("content-type", "application/x-www-form-urlencoded");
        let form = match &client.client_secret {
            Some(secret) => {
                // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined.
                let pair = format!(
                    "{}:{}",
                    encode(&client.client_id),
                    encode(secret.expose_secret())
                );
                request =
                    request.header("authorization", format!("Basic {}", STANDARD.encode(pair)));
                form
            }
            // A client without a secret (a metadata-document client) names itself in the form.
            None => format!("{form}&client_id={}", encode(&client.client_id)),
        };
        let request = request.body(form);
        let answer = self.registry.dcr().http.send(request, &what).await?;
        if answer.status != 200 {
            return Err(match oauth_error(&what, answer.status, &answer.body) {
                // The token endpoint's 401 is the client refused, not a registration token.
                Error::Unauthenticated { .. } => {
                    let code = serde_json::from_slice::<Value>(&answer.body)
                        .ok()
                        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| "invalid_client".into());
                    Error::Protocol {
                        backend: BACKEND,
                        code,
                        description: Some(format!("{what} was refused ({})", answer.status)),
                    }
                }
                other => other,
            });
        }
        let body = answer.json(&what)?;
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol {
                backend: BACKEND,
                code: "invalid_response".into(),
                description: Some(format!("{what}: no access_token")),
            })?;
        let lifetime = body
            .get("expires_in")
            .and_then(Value::as_u64)
            .map_or(Duration::from_secs(300), Duration::from_secs);
        let now = Instant::now();
        Ok(Cached {
            token: Secret::new(token),
            fresh_until: now + lifetime.saturating_sub(self.skew),
            expires_at: OffsetDateTime::now_utc()
                + time::Duration::try_from(lifetime).unwrap_or(time::Duration::MAX),
        })
    }
}

#[async_trait]
impl CredentialStore for DcrCredentialStore {
    fn backend(&self) -> &'static str {
        BACKEND
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
        if let Some(cached) = self.tokens.get(reference).await
            && cached.fresh_until <= Instant::now()
        {
            self.tokens.invalidate(reference).await;
        }
        let cached = self
            .tokens
            .try_get_with_by_ref(reference, self.fetch(slot))
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
