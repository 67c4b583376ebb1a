//! The clients this process registered, one per (issuer, client profile), kept behind a
//! persistence trait.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use identity_http::{KeyedLocks, PrivateKey};

use async_trait::async_trait;
use identity_core::{Error, OffsetDateTime, Secret};
use tracing::{info, warn};

use crate::registration::{ClientMetadata, RegisteredClient};
use crate::{BACKEND, Dcr};

/// What a registry keys a client by: the issuer that registered it and the name of the client
/// profile (one process may be several clients of one server).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    /// The authorization server's issuer.
    pub issuer: String,
    /// The profile's name.
    pub profile: String,
}

/// Where registered clients are kept between calls (and, for a file or a shared store, between
/// restarts and replicas).
///
/// ```
/// # use identity_dcr::{ClientPersistence, MemoryPersistence};
/// fn takes(_: &dyn ClientPersistence) {}
/// takes(&MemoryPersistence::default());
/// ```
#[async_trait]
pub trait ClientPersistence: Send + Sync + fmt::Debug + 'static {
    /// The client kept for `key`.
    async fn load(&self, key: &ClientKey) -> Result<Option<RegisteredClient>, Error>;
    /// Keeps `client` for `key`, replacing any.
    async fn save(&self, key: &ClientKey, client: &RegisteredClient) -> Result<(), Error>;
    /// Forgets the client of `key`.
    async fn remove(&self, key: &ClientKey) -> Result<(), Error>;
    /// Forgets every client.
    async fn clear(&self) -> Result<(), Error>;

    /// Takes the registration lease of `key` for `holder` until `ttl` has passed: `true` when
    /// taken. Only the holder registers, so that replicas sharing this persistence register
    /// once. What one process keeps needs no lease (the registry's own lock serialises its
    /// callers): the default grants it.
    async fn try_lease(
        &self,
        _key: &ClientKey,
        _holder: &str,
        _ttl: Duration,
    ) -> Result<bool, Error> {
        Ok(true)
    }

    /// Gives the registration lease back.
    async fn release(&self, _key: &ClientKey, _holder: &str) -> Result<(), Error> {
        Ok(())
    }
}

/// Clients kept in memory: lost at exit.
#[derive(Debug, Default)]
pub struct MemoryPersistence(Mutex<HashMap<ClientKey, RegisteredClient>>);

#[async_trait]
impl ClientPersistence for MemoryPersistence {
    async fn load(&self, key: &ClientKey) -> Result<Option<RegisteredClient>, Error> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned())
    }
    async fn save(&self, key: &ClientKey, client: &RegisteredClient) -> Result<(), Error> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), client.clone());
        Ok(())
    }
    async fn remove(&self, key: &ClientKey) -> Result<(), Error> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }
    async fn clear(&self) -> Result<(), Error> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

/// A profile: the name a registry keys it by, and how the client comes to be at each server,
/// in the order the MCP authorization specification (2026-07-28) gives: a client registered in
/// advance for that issuer; else a Client ID Metadata Document, when the server accepts them
/// and the profile has one; else dynamic registration with `metadata`.
#[derive(Debug, Clone)]
pub struct ClientProfile {
    /// The profile's name.
    pub name: String,
    /// What to register.
    pub metadata: ClientMetadata,
    /// An initial access token, for registration endpoints that demand one.
    pub initial_access_token: Option<Secret>,
    /// Clients registered in advance, by issuer.
    pub pre_registered: HashMap<String, RegisteredClient>,
    /// The HTTPS URL serving this client's metadata document: its client id where the server
    /// supports Client ID Metadata Documents.
    pub metadata_document: Option<url::Url>,
    /// The key a client without a secret signs its assertions with (`private_key_jwt`,
    /// RFC 7523): a metadata-document client, or one registered in advance with a key.
    pub private_key: Option<PrivateKey>,
}

impl ClientProfile {
    /// A profile named `name` registering `metadata`.
    ///
    /// ```
    /// let profile = identity_dcr::ClientProfile::new("crm", identity_dcr::ClientMetadata::service("agent", "crm:read"));
    /// assert_eq!(profile.name, "crm");
    /// ```
    pub fn new(name: impl Into<String>, metadata: ClientMetadata) -> Self {
        Self {
            name: name.into(),
            metadata,
            initial_access_token: None,
            pre_registered: HashMap::new(),
            metadata_document: None,
            private_key: None,
        }
    }

    /// With a client registered in advance at its issuer: used there, before anything else.
    ///
    /// ```
    /// # use identity_dcr::{ClientMetadata, ClientProfile, RegisteredClient};
    /// let client = RegisteredClient::from_registration_answer(
    ///     "https://as.example.com", serde_json::json!({"client_id": "agent", "client_secret": "s"}))?;
    /// let p = ClientProfile::new("crm", ClientMetadata::default()).with_pre_registered(client);
    /// assert!(p.pre_registered.contains_key("https://as.example.com"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_pre_registered(mut self, client: RegisteredClient) -> Self {
        self.pre_registered.insert(client.issuer.clone(), client);
        self
    }

    /// With the URL of this client's metadata document (an `https` URL the client serves).
    ///
    /// ```
    /// # use identity_dcr::{ClientMetadata, ClientProfile};
    /// let url = url::Url::parse("https://agent.example.com/oauth/client.json").unwrap();
    /// let p = ClientProfile::new("crm", ClientMetadata::default()).with_metadata_document(url);
    /// assert!(p.metadata_document.is_some());
    /// ```
    pub fn with_metadata_document(mut self, url: url::Url) -> Self {
        self.metadata_document = Some(url);
        self
    }

    /// With the private key a client without a secret authenticates with (`private_key_jwt`).
    ///
    /// ```
    /// # use identity_dcr::{ClientMetadata, ClientProfile};
    /// // An Ed25519 key in PKCS#8 PEM (an example: never put a real key in code).
    /// let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH\n-----END PRIVATE KEY-----\n";
    /// let key = identity_http::PrivateKey::from_pem(pem.as_bytes(), "EdDSA", Some("k1".into()))?;
    /// let p = ClientProfile::new("crm", ClientMetadata::default()).with_private_key(key);
    /// assert!(p.private_key.is_some());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_private_key(mut self, key: PrivateKey) -> Self {
        self.private_key = Some(key);
        self
    }

    /// With an initial access token.
    ///
    /// ```
    /// # use identity_dcr::{ClientMetadata, ClientProfile};
    /// let p = ClientProfile::new("crm", ClientMetadata::default()).with_initial_access_token(identity_core::Secret::new("iat"));
    /// assert!(p.initial_access_token.is_some());
    /// ```
    pub fn with_initial_access_token(mut self, token: Secret) -> Self {
        self.initial_access_token = Some(token);
        self
    }
}

/// Registered clients, obtained once per (issuer, profile): concurrent callers of
/// [`ClientRegistry::get_or_create`] share one registration.
#[derive(Debug)]
pub struct ClientRegistry {
    dcr: Dcr,
    persistence: Arc<dyn ClientPersistence>,
    /// One lock per key, so that registrations for different keys run in parallel.
    locks: KeyedLocks<ClientKey>,
    /// This registry's name as a holder of registration leases.
    holder: String,
}

/// How long a registration lease lasts: a registration that takes longer (a server answering
/// slowly, a replica that died) lets another replica register.
const REGISTRATION_LEASE: Duration = Duration::from_secs(30);

/// How often a replica waiting for another's registration looks for it.
const REGISTRATION_POLL: Duration = Duration::from_millis(100);

impl ClientRegistry {
    /// A registry that registers with `dcr` and keeps clients in `persistence`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use identity_dcr::{ClientRegistry, Dcr, MemoryPersistence};
    /// let registry = ClientRegistry::new(Dcr::new(identity_http::OutboundPolicy::default())?, Arc::new(MemoryPersistence::default()));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn new(dcr: Dcr, persistence: Arc<dyn ClientPersistence>) -> Self {
        let mut random = [0u8; 12];
        // Without randomness, the process id and time still tell replicas apart.
        if getrandom::fill(&mut random).is_err() {
            let seed = u128::from(std::process::id())
                ^ OffsetDateTime::now_utc()
                    .unix_timestamp_nanos()
                    .unsigned_abs();
            random.copy_from_slice(&seed.to_le_bytes()[..12]);
        }
        Self {
            dcr,
            persistence,
            locks: KeyedLocks::default(),
            holder: hex::encode(random),
        }
    }

    /// The discovery and registration client this registry uses.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use identity_dcr::{ClientRegistry, Dcr, MemoryPersistence};
    /// # let registry = ClientRegistry::new(Dcr::new(identity_http::OutboundPolicy::default())?, Arc::new(MemoryPersistence::default()));
    /// let dcr = registry.dcr();
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn dcr(&self) -> &Dcr {
        &self.dcr
    }

    /// The client of `profile` at `issuer`: the one kept, or a new registration when there is
    /// none or its secret has expired. Idempotent, and one registration however many callers
    /// ask at once.
    ///
    /// ```no_run
    /// # async fn example(registry: identity_dcr::ClientRegistry, profile: identity_dcr::ClientProfile) -> Result<(), identity_core::Error> {
    /// let client = registry.get_or_create("https://as.example.com", &profile).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_or_create(
        &self,
        issuer: &str,
        profile: &ClientProfile,
    ) -> Result<RegisteredClient, Error> {
        let key = ClientKey {
            issuer: issuer.to_owned(),
            profile: profile.name.clone(),
        };
        if let Some(client) = profile.pre_registered.get(issuer) {
            return Ok(client.clone());
        }
        let _held = self.locks.lock(key.clone()).await;
        let usable = |client: &RegisteredClient| {
            client.issuer == issuer && !client.secret_expired_at(OffsetDateTime::now_utc())
        };
        if let Some(client) = self.persistence.load(&key).await?
            && usable(&client)
        {
            return Ok(client);
        }
        // Replicas sharing the persistence: one registers, the others wait for its client.
        // The lease lapses if its holder dies, so the wait is bounded by its time to live.
        let waited_since = tokio::time::Instant::now();
        while !self
            .persistence
            .try_lease(&key, &self.holder, REGISTRATION_LEASE)
            .await?
        {
            if waited_since.elapsed() > REGISTRATION_LEASE * 2 {
                return Err(Error::unavailable(
                    BACKEND,
                    format!(
                        "another replica has been registering the client of profile `{}` at `{issuer}` for over {} s",
                        profile.name,
                        (REGISTRATION_LEASE * 2).as_secs()
                    ),
                ));
            }
            tokio::time::sleep(REGISTRATION_POLL).await;
            if let Some(client) = self.persistence.load(&key).await?
                && usable(&client)
            {
                return Ok(client);
            }
        }
        let outcome = self.create_under_lease(issuer, profile, &key, usable).await;
        let released = self.persistence.release(&key, &self.holder).await;
        let client = outcome?;
        if let Err(err) = released {
            // The client is saved; the lease lapses by itself.
            warn!(issuer, profile = %profile.name, error = %err, "could not give the registration lease back");
        }
        Ok(client)
    }

    /// Registers (or takes the metadata document's client) while holding the lease, unless a
    /// replica that held it before saved a usable client meanwhile.
    async fn create_under_lease(
        &self,
        issuer: &str,
        profile: &ClientProfile,
        key: &ClientKey,
        usable: impl Fn(&RegisteredClient) -> bool,
    ) -> Result<RegisteredClient, Error> {
        if let Some(client) = self.persistence.load(key).await?
            && usable(&client)
        {
            return Ok(client);
        }
        let server = self.dcr.discover(issuer).await?;
        if server.client_id_metadata_document_supported
            && let Some(document) = &profile.metadata_document
        {
            let client =
                RegisteredClient::from_metadata_document(issuer, document, &profile.metadata)?;
            self.persistence.save(key, &client).await?;
            return Ok(client);
        }
        if !server.supports_registration() {
            return Err(Error::NotSupported {
                operation: "dynamic client registration (no registration_endpoint)",
                backend: BACKEND,
            });
        }
        let client = self
            .dcr
            .register(
                &server,
                &profile.metadata,
                profile.initial_access_token.as_ref(),
            )
            .await?;
        info!(issuer, profile = %profile.name, client_id = %client.client_id, "registered a client");
        self.persistence.save(key, &client).await?;
        Ok(client)
    }

    /// The client kept for `profile` at `issuer`, without registering.
    ///
    /// ```no_run
    /// # async fn example(registry: identity_dcr::ClientRegistry) -> Result<(), identity_core::Error> {
    /// let kept = registry.load("https://as.example.com", "crm").await?;
    /// # Ok(()) }
    /// ```
    pub async fn load(
        &self,
        issuer: &str,
        profile: &str,
    ) -> Result<Option<RegisteredClient>, Error> {
        self.persistence
            .load(&ClientKey {
                issuer: issuer.to_owned(),
                profile: profile.to_owned(),
            })
            .await
    }

    /// Keeps `client` for `profile` (its issuer is the client's own).
    ///
    /// ```no_run
    /// # async fn example(registry: identity_dcr::ClientRegistry, client: identity_dcr::RegisteredClient) -> Result<(), identity_core::Error> {
    /// registry.save("crm", &client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn save(&self, profile: &str, client: &RegisteredClient) -> Result<(), Error> {
        let key = ClientKey {
            issuer: client.issuer.clone(),
            profile: profile.to_owned(),
        };
        self.persistence.save(&key, client).await
    }

    /// Forgets the client of `profile` at `issuer` (after the server answered `invalid_client`,
    /// so that the next [`ClientRegistry::get_or_create`] registers again).
    ///
    /// ```no_run
    /// # async fn example(registry: identity_dcr::ClientRegistry) -> Result<(), identity_core::Error> {
    /// registry.remove("https://as.example.com", "crm").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, issuer: &str, profile: &str) -> Result<(), Error> {
        let key = ClientKey {
            issuer: issuer.to_owned(),
            profile: profile.to_owned(),
        };
        let _held = self.locks.lock(key.clone()).await;
        self.persistence.remove(&key).await
    }

    /// Forgets every client.
    ///
    /// ```no_run
    /// # async fn example(registry: identity_dcr::ClientRegistry) -> Result<(), identity_core::Error> {
    /// registry.clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<(), Error> {
        self.persistence.clear().await
    }

    /// True when `issuer`'s metadata has a registration endpoint.
    ///
    /// ```no_run
    /// # async fn example(registry: identity_dcr::ClientRegistry) -> Result<(), identity_core::Error> {
    /// let can = registry.supports_dcr("https://as.example.com").await?;
    /// # Ok(()) }
    /// ```
    pub async fn supports_dcr(&self, issuer: &str) -> Result<bool, Error> {
        Ok(self.dcr.discover(issuer).await?.supports_registration())
    }
}
