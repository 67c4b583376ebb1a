//! `VaultDynamicSecrets`: a new secret from a Vault secrets engine for each resolution (a
//! database login, cloud keys), its lease kept, renewed and revoked.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, OffsetDateTime,
    RequestContext, Secret, async_trait,
};
use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::{instrument, warn};
use vaultrs::client::Client as _;
use vaultrs::error::ClientError;

use crate::failure::Failure;
use crate::path::check_path;
use crate::store::{Inner, VaultCredentialStore};

/// Secrets minted by a Vault (or OpenBao) secrets engine, one per resolution: a ref names a
/// role, and each resolution reads `<mount>/creds/<role>`, which makes a new login (the
/// `database` engine creates a database user; the `aws` engine, keys).
///
/// - **The secret** is the engine's answer as a JSON object (`{"username": ..., "password":
///   ...}` for a database), so that a caller given it (`agent-identity exec`, `/api/deliver`)
///   has the whole login.
/// - **The credential's id** is the lease id, and its expiry the lease's end.
/// - **Leases** are kept by the store while they run: [`VaultDynamicSecrets::renew`] extends
///   one, [`VaultDynamicSecrets::revoke`] ends one at once (the login stops working),
///   [`VaultDynamicSecrets::revoke_all`] ends them all (at shutdown). One that is not renewed
///   is revoked by Vault when it lapses. A secret the service refused
///   ([`CredentialStore::forget_refused`]) has its lease revoked.
///
/// It shares the connection, token and retries of a [`VaultCredentialStore`].
///
/// ```
/// use identity_core::Secret;
/// use identity_vault::{VaultAuth, VaultCredentialStore, VaultDynamicSecrets};
/// let vault = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(Secret::new("t"))).build()?;
/// let database = VaultDynamicSecrets::new(&vault, "database")?;
/// assert!(database.leases().is_empty());
/// assert!(VaultDynamicSecrets::new(&vault, "../sys").is_err());
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct VaultDynamicSecrets {
    inner: Arc<Inner>,
    mount: String,
    leases: Arc<Mutex<HashMap<String, Held>>>,
}

/// A lease, and the SHA-256 of its secret (to find the lease of a refused secret without
/// keeping the secret).
struct Held {
    lease: HeldLease,
    fingerprint: [u8; 32],
}

fn fingerprint(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

impl fmt::Debug for VaultDynamicSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultDynamicSecrets")
            .field("address", &self.inner.address)
            .field("mount", &self.mount)
            .field("leases", &self.leases().len())
            .finish_non_exhaustive()
    }
}

/// A lease the store holds: which ref it was minted for, until when, and whether Vault renews
/// it.
///
/// ```
/// fn lapses(lease: &identity_vault::HeldLease) -> identity_core::OffsetDateTime { lease.expires_at }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldLease {
    /// The lease id (also the credential's id).
    pub lease_id: String,
    /// The ref (role) it was minted for.
    pub reference: CredentialRef,
    /// When it lapses unless renewed.
    pub expires_at: OffsetDateTime,
    /// Whether Vault will renew it.
    pub renewable: bool,
}

/// Vault's envelope of a read that makes a lease.
#[derive(Deserialize)]
struct Leased {
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    data: Option<Map<String, Value>>,
}

/// One request of the engine's or of the leases' API: `GET <mount>/creds/<role>`, or `PUT
/// sys/leases/renew` and `sys/leases/revoke` with a JSON body (vaultrs has no call for either).
struct VaultRequest {
    method: RequestMethod,
    path: String,
    body: Option<Value>,
}

impl VaultRequest {
    fn get(path: String) -> Self {
        Self {
            method: RequestMethod::GET,
            path,
            body: None,
        }
    }

    fn put(path: &str, body: Value) -> Self {
        Self {
            method: RequestMethod::PUT,
            path: path.to_owned(),
            body: Some(body),
        }
    }
}

impl Endpoint for VaultRequest {
    type Response = Value;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        self.method.clone()
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(self.body.as_ref().map(|body| body.to_string().into_bytes()))
    }
}

/// Sends `endpoint` with `client`'s token and namespace; its answer's envelope, when it has one
/// (a revocation answers 204, with none).
async fn send(
    client: &vaultrs::client::VaultClient,
    endpoint: VaultRequest,
) -> Result<Option<Leased>, ClientError> {
    let answer = endpoint
        .with_middleware(client.middle())
        .exec(client.http())
        .await
        .map_err(api_error)?;
    if answer.response.body().is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(answer.response.body())
        .map(Some)
        .map_err(|source| ClientError::JsonParseError { source })
}

/// Vault's `{"errors": [...]}` of a refusal, as vaultrs reads it for its own calls (it does not
/// export how), so that the refusal's words can be told apart.
fn api_error(error: rustify::errors::ClientError) -> ClientError {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    if let rustify::errors::ClientError::ServerResponseError {
        code,
        content: Some(content),
    } = &error
        && let Ok(said) = serde_json::from_str::<Errors>(content)
    {
        return ClientError::APIError {
            code: *code,
            errors: said.errors,
        };
    }
    ClientError::from(error)
}

impl VaultDynamicSecrets {
    /// Secrets of the engine mounted at `mount` (`database`), through `vault`'s connection
    /// and token.
    pub fn new(vault: &VaultCredentialStore, mount: impl Into<String>) -> Result<Self, Error> {
        let mount = mount.into();
        check_path(&mount, "vault dynamic secrets mount")?;
        Ok(Self {
            inner: vault.inner.clone(),
            mount,
            leases: Arc::default(),
        })
    }

    /// The leases the store holds now.
    pub fn leases(&self) -> Vec<HeldLease> {
        let mut leases: Vec<HeldLease> = self
            .held()
            .values()
            .map(|held| held.lease.clone())
            .collect();
        leases.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
        leases
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Extends the lease `lease_id` by `increment` (Vault may grant less, up to the role's
    /// maximum); its new end.
    #[instrument(skip_all)]
    pub async fn renew(
        &self,
        lease_id: &str,
        increment: Duration,
    ) -> Result<OffsetDateTime, Error> {
        let body = json!({"lease_id": lease_id, "increment": increment.as_secs()});
        let renewed =
            self.inner
                .call(|session| {
                    let body = body.clone();
                    async move {
                        send(&session.client, VaultRequest::put("sys/leases/renew", body)).await
                    }
                })
                .await
                .map_err(|f| f.into_error("renewal of a lease"))?
                .ok_or_else(|| {
                    Error::unavailable(crate::BACKEND, "the renewal answered nothing")
                })?;
        let expires_at = lease_end(renewed.lease_duration);
        if let Some(held) = self.held().get_mut(lease_id) {
            held.lease.expires_at = expires_at;
            held.lease.renewable = renewed.renewable;
        }
        Ok(expires_at)
    }

    /// Ends the lease `lease_id` now: Vault revokes the secret (a database login is dropped).
    #[instrument(skip_all)]
    pub async fn revoke(&self, lease_id: &str) -> Result<(), Error> {
        let body = json!({ "lease_id": lease_id });
        self.inner
            .call(|session| {
                let body = body.clone();
                async move {
                    send(
                        &session.client,
                        VaultRequest::put("sys/leases/revoke", body),
                    )
                    .await
                }
            })
            .await
            .map_err(|f| f.into_error("revocation of a lease"))?;
        self.held().remove(lease_id);
        Ok(())
    }

    /// Ends every lease the store holds (at shutdown); how many were revoked. A lease that
    /// cannot be revoked is kept (and lapses in Vault); the first error is returned.
    pub async fn revoke_all(&self) -> Result<usize, Error> {
        let ids: Vec<String> = self.held().keys().cloned().collect();
        let mut revoked = 0;
        let mut first_error = None;
        for id in ids {
            match self.revoke(&id).await {
                Ok(()) => revoked += 1,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(revoked),
        }
    }

    /// Forgets the leases that have lapsed (Vault has revoked them already); how many. Each new
    /// secret does it too.
    pub fn forget_lapsed(&self, now: OffsetDateTime) -> usize {
        let mut held = self.held();
        let before = held.len();
        held.retain(|_, held| held.lease.expires_at > now);
        before - held.len()
    }

    async fn mint(&self, reference: &CredentialRef) -> Result<Credential, Failure> {
        let path = format!("{}/creds/{}", self.mount, reference.as_str());
        let leased = self
            .inner
            .call(|session| {
                let path = path.clone();
                async move { send(&session.client, VaultRequest::get(path)).await }
            })
            .await?
            .ok_or_else(|| Failure::Malformed("the engine answered nothing".into()))?;
        let data = leased
            .data
            .ok_or_else(|| Failure::Malformed("the engine's answer has no data".into()))?;
        if leased.lease_id.is_empty() {
            return Err(Failure::Malformed(
                "the engine's answer has no lease: not a dynamic secret".into(),
            ));
        }
        let expires_at = lease_end(leased.lease_duration);
        let name = data
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or(reference.as_str())
            .to_owned();
        let credential = Credential::new(
            leased.lease_id.clone(),
            CredentialKind::Fixed,
            reference.as_str(),
        )
        .map_err(|err| Failure::Malformed(err.to_string()))?
        .with_name(name)
        .with_expires_at(expires_at)
        .with_secret(Secret::new(Value::Object(data).to_string()));
        let fingerprint = credential
            .secret
            .as_ref()
            .map(|secret| fingerprint(secret.expose_secret()))
            .unwrap_or_default();
        // Leases Vault has ended are forgotten as new ones come: a long-running store keeps
        // only the leases still running.
        self.forget_lapsed(OffsetDateTime::now_utc());
        self.held().insert(
            leased.lease_id.clone(),
            Held {
                lease: HeldLease {
                    lease_id: leased.lease_id,
                    reference: reference.clone(),
                    expires_at,
                    renewable: leased.renewable,
                },
                fingerprint,
            },
        );
        Ok(credential)
    }
}

fn lease_end(seconds: u64) -> OffsetDateTime {
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    OffsetDateTime::now_utc().saturating_add(time::Duration::seconds(seconds))
}

#[async_trait]
impl CredentialStore for VaultDynamicSecrets {
    fn backend(&self) -> &'static str {
        crate::BACKEND
    }

    /// A new secret for the role named by `reference`: each call makes one.
    #[instrument(skip_all)]
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        check_path(reference.as_str(), "dynamic secret role")?;
        match self.mint(reference).await {
            Ok(credential) => Ok(Some(credential)),
            Err(Failure::NotFound) => Ok(None),
            // The database engine answers 400 for a role it does not have.
            Err(Failure::Rejected {
                status: 400,
                detail,
            }) if detail.contains("unknown role") => Ok(None),
            Err(failure) => {
                Err(failure.into_error(&format!("dynamic secret of role `{}`", reference.as_str())))
            }
        }
    }

    /// Secrets are made on demand: there is nothing to list.
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }

    async fn list_by_kind(&self, _kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }

    /// The service refused `secret`: its lease (found by the secret's digest) is revoked, so
    /// that the login is dropped rather than left to lapse; the next resolution makes a new one.
    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        let refused = fingerprint(secret.expose_secret());
        let ids: Vec<String> = self
            .held()
            .values()
            .filter(|held| &held.lease.reference == reference && held.fingerprint == refused)
            .map(|held| held.lease.lease_id.clone())
            .collect();
        for id in ids {
            if let Err(err) = self.revoke(&id).await {
                warn!(error = %err, "a refused dynamic secret's lease could not be revoked");
            }
        }
        Ok(())
    }
}
