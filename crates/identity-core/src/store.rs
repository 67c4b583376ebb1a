//! The `CredentialStore` trait every backend implements.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::context::RequestContext;
use crate::credential::{Credential, CredentialKind, CredentialRef};
use crate::error::Error;
use crate::secret::Secret;

/// What a store supports beyond the required lookups.
///
/// ```
/// let caps = identity_core::Capabilities::default();
/// assert!(!caps.leases);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`CredentialStore::reserve`] and [`CredentialStore::release`] work.
    pub leases: bool,
    /// [`CredentialStore::find_by_ref`] answers differently for different callers (a token
    /// exchanged for the caller, a user's own OAuth token): a cache keyed by ref alone would hand
    /// one caller's credential to the next, so a read cache refuses such a store.
    pub per_caller: bool,
}

impl Capabilities {
    /// Capabilities with migration leases.
    ///
    /// ```
    /// assert!(identity_core::Capabilities::with_leases().leases);
    /// ```
    pub const fn with_leases() -> Self {
        Self {
            leases: true,
            per_caller: false,
        }
    }

    /// The capabilities of a store whose credentials depend on the caller.
    ///
    /// ```
    /// assert!(identity_core::Capabilities::per_caller().per_caller);
    /// ```
    pub const fn per_caller() -> Self {
        Self {
            leases: false,
            per_caller: true,
        }
    }
}

/// A source of credentials: memory, Vault, AWS Secrets Manager, a token exchange, ...
///
/// A store answers what it holds. It does not decide whether a credential may be used: it returns
/// a pending, revoked or expired credential as it is, and the router refuses it with a reason.
/// Listings return metadata only (no secret); [`CredentialStore::find_by_ref`] returns the secret.
///
/// Implementations are shared as `Arc<dyn CredentialStore>`. Their errors are [`Error`]s with no
/// secret in them. Migration leases are optional: a store without them answers
/// [`Error::NotSupported`].
///
/// ```
/// use std::sync::Arc;
/// use identity_core::*;
///
/// /// A store that holds one credential.
/// #[derive(Debug)]
/// struct Single(Credential);
///
/// #[async_trait]
/// impl CredentialStore for Single {
///     fn backend(&self) -> &'static str { "single" }
///     async fn find_by_ref(&self, r: &CredentialRef, _: &RequestContext) -> Result<Option<Credential>, Error> {
///         Ok((&self.0.reference == r).then(|| self.0.clone()))
///     }
///     async fn list_active(&self) -> Result<Vec<Credential>, Error> {
///         Ok(vec![self.0.clone().without_secret()])
///     }
///     async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
///         Ok(self.list_active().await?.into_iter().filter(|c| c.kind == kind).collect())
///     }
/// }
///
/// # tokio_test(async {
/// let store: Arc<dyn CredentialStore> =
///     Arc::new(Single(Credential::new("c1", CredentialKind::Fixed, "slot")?));
/// let r = CredentialRef::new("slot")?;
/// let err = store.reserve(&r, "m1", std::time::Duration::from_secs(60)).await.unwrap_err();
/// assert!(matches!(err, Error::NotSupported { .. }));
/// # Ok::<(), Error>(()) });
/// # fn tokio_test<F: std::future::Future<Output = Result<(), Error>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap()
/// # }
/// ```
#[async_trait]
pub trait CredentialStore: Send + Sync + Debug + 'static {
    /// A short name of the backend, used in errors and audit events (`memory`, `vault`, ...).
    fn backend(&self) -> &'static str;

    /// What the store supports beyond lookups.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// A cheap check that the backend answers (a token lookup, a health endpoint). Servers call
    /// it from a background monitor, never once per request. Stores with no backend to reach
    /// keep the default, which always succeeds.
    async fn health(&self) -> Result<(), Error> {
        Ok(())
    }

    /// The credential in slot `reference`, with its secret, or `None` when there is none.
    ///
    /// `context` is the request the credential is asked for, so that per-user stores (token
    /// exchange, delegated OAuth tokens) know whose credential to produce.
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
    ) -> Result<Option<Credential>, Error>;

    /// Every credential whose status is `active`, without secrets.
    async fn list_active(&self) -> Result<Vec<Credential>, Error>;

    /// Every credential of `kind`, whatever its status, without secrets.
    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error>;

    /// How many credentials the store holds, whatever their status: what a health report
    /// shows. The default counts the two listings; a store whose listings read every entry from
    /// a remote backend answers from its index instead, and says how it counts.
    async fn count(&self) -> Result<usize, Error> {
        let fixed = self.list_by_kind(CredentialKind::Fixed).await?.len();
        let delegated = self
            .list_by_kind(CredentialKind::UserDelegated)
            .await?
            .len();
        Ok(fixed + delegated)
    }

    /// Reserves `reference` for `migration_id` for `ttl`. `Ok(true)` when the lease is held by
    /// `migration_id` afterwards (taken, or renewed by the same migration), `Ok(false)` when
    /// another migration holds it. Exactly one of many concurrent callers wins.
    async fn reserve(
        &self,
        reference: &CredentialRef,
        migration_id: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let _ = (reference, migration_id, ttl);
        Err(Error::NotSupported {
            operation: "migration leases",
            backend: self.backend(),
        })
    }

    /// Releases the lease of `migration_id` on `reference`. Releasing a lease that is not held
    /// (or has expired) succeeds; releasing another migration's lease is [`Error::LeaseHeld`].
    async fn release(&self, reference: &CredentialRef, migration_id: &str) -> Result<(), Error> {
        let _ = (reference, migration_id);
        Err(Error::NotSupported {
            operation: "migration leases",
            backend: self.backend(),
        })
    }

    /// The service the credential in slot `reference`, found for `context`, was meant for
    /// refused `secret` (an HTTP 401): forget it wherever it is kept, so that the next lookup
    /// produces a fresh one rather than the same refused one. A store that keeps nothing keeps
    /// the default, which does nothing. Only that secret is forgotten: a fresher one obtained
    /// meanwhile stays.
    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        let _ = (reference, context, secret);
        Ok(())
    }
}

/// A store whose credentials can be written: what `import` and the conformance suite use.
///
/// ```
/// use identity_core::CredentialWriter;
/// fn takes_writer(_: &dyn CredentialWriter) {}
/// ```
#[async_trait]
pub trait CredentialWriter: CredentialStore {
    /// Creates or replaces the credential in slot `credential.reference`, secret included.
    async fn put(&self, credential: Credential) -> Result<(), Error>;

    /// Deletes the credential in slot `reference`; `Ok(false)` when there was none.
    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error>;
}

/// Checks the arguments of [`CredentialStore::reserve`] the way every store does: a migration id
/// that is not blank, a TTL that is not zero.
///
/// ```
/// use std::time::Duration;
/// use identity_core::check_lease_arguments;
///
/// assert!(check_lease_arguments("m1", Duration::from_secs(60)).is_ok());
/// assert!(check_lease_arguments(" ", Duration::from_secs(60)).is_err());
/// assert!(check_lease_arguments("m1", Duration::ZERO).is_err());
/// ```
pub fn check_lease_arguments(migration_id: &str, ttl: Duration) -> Result<(), Error> {
    if migration_id.trim().is_empty() {
        return Err(Error::InvalidArgument {
            argument: "migration id",
            problem: "is empty".into(),
        });
    }
    if ttl.is_zero() {
        return Err(Error::InvalidArgument {
            argument: "lease ttl",
            problem: "is zero".into(),
        });
    }
    Ok(())
}

macro_rules! forward_store {
    ($($wrapper:ident),*) => {$(
        #[async_trait]
        impl<T: CredentialStore + ?Sized> CredentialStore for $wrapper<T> {
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn health(&self) -> Result<(), Error> {
                (**self).health().await
            }
            async fn find_by_ref(
                &self,
                reference: &CredentialRef,
                context: &RequestContext,
            ) -> Result<Option<Credential>, Error> {
                (**self).find_by_ref(reference, context).await
            }
            async fn list_active(&self) -> Result<Vec<Credential>, Error> {
                (**self).list_active().await
            }
            async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
                (**self).list_by_kind(kind).await
            }
            async fn count(&self) -> Result<usize, Error> {
                (**self).count().await
            }
            async fn reserve(
                &self,
                reference: &CredentialRef,
                migration_id: &str,
                ttl: Duration,
            ) -> Result<bool, Error> {
                (**self).reserve(reference, migration_id, ttl).await
            }
            async fn release(&self, reference: &CredentialRef, migration_id: &str) -> Result<(), Error> {
                (**self).release(reference, migration_id).await
            }
            async fn forget_refused(&self, reference: &CredentialRef, context: &RequestContext, secret: &Secret) -> Result<(), Error> {
                (**self).forget_refused(reference, context, secret).await
            }
        }

        #[async_trait]
        impl<T: CredentialWriter + ?Sized> CredentialWriter for $wrapper<T> {
            async fn put(&self, credential: Credential) -> Result<(), Error> {
                (**self).put(credential).await
            }
            async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
                (**self).delete(reference).await
            }
        }
    )*};
}

forward_store!(Arc, Box);
