//! Revocations for agent-identity: a credential, or one secret (a user's token), revoked at
//! once on every replica.
//!
//! [`Revocations`] keeps the list in one document of a [`SharedState`] (Vault, Redis, or
//! memory for one process) and is a router [`Gate`]: a resolution of a revoked credential, or
//! one whose secret was revoked, is refused. Each replica reads the list again every
//! [`RevocationSettings::refresh`], and refuses everything while its copy is older than
//! [`RevocationSettings::max_staleness`] (it fails closed: a replica cut off from the shared
//! state does not go on serving what may have been revoked). [`Revocations::revoke`] returns
//! once `max_staleness` has passed since the list was written, so that when it returns no
//! replica serves what it revoked: a replica either read the new list or stopped serving.
//!
//! A revoked secret is kept as its SHA-256, never as itself. A revocation lasts until its
//! `until` (the credential's or token's own end), or for good.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use identity_core::*;
//! use identity_revocation::{Revocation, RevocationSettings, Revocations};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let settings = RevocationSettings::new(Duration::from_millis(20), Duration::from_millis(50));
//! let revocations = Revocations::start(Arc::new(identity_state::MemoryState::default()), settings).await?;
//! let store = identity_memory::MemoryCredentialStore::new();
//! store.insert(Credential::new("cred-1", CredentialKind::Fixed, "openai")?.with_secret(Secret::new("sk")));
//! let router = identity_router::Router::builder().default_store(store).gate(revocations.clone())
//!     .rule(RoutingRule::new("llm", "openai").with_priority(1)).build().unwrap();
//! let ctx = RequestContext::builder().user_id("u").resource_id("r").resource_kind(ResourceKind::Shared)
//!     .provider("openai").model("m").action("read").trace_id("t").build().unwrap();
//! assert!(router.resolve(&ctx).await.is_ok());
//!
//! revocations.revoke(Revocation::credential("cred-1").by("security").because("leaked")).await?;
//! let denial = router.resolve(&ctx).await.unwrap_err();
//! assert_eq!(denial.reason.code(), "credential_not_active");
//! # Ok::<(), identity_core::Error>(())
//! # }).unwrap();
//! ```

mod list;

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use identity_core::{CredentialStatus, Error, OffsetDateTime, Secret};
use identity_router::{Admission, DenialReason, Gate, Resolution};
use identity_state::SharedState;
use tracing::{info, warn};

pub use list::{Revocation, RevocationList, Revoked};

/// The key of the list in the shared state.
pub const LIST_KEY: &str = "revocations";

/// How many times a revocation reads and writes the list again after another writer came
/// first.
const WRITE_ATTEMPTS: usize = 64;

/// How often a replica reads the list, and how old its copy may get before it refuses
/// everything.
///
/// ```
/// use std::time::Duration;
/// let settings = identity_revocation::RevocationSettings::default();
/// assert_eq!(settings.refresh, Duration::from_secs(1));
/// assert_eq!(settings.max_staleness, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationSettings {
    /// How often the list is read.
    pub refresh: Duration,
    /// How old a replica's copy may be before it refuses every resolution (and how long
    /// [`Revocations::revoke`] waits before it returns). At least `refresh`.
    pub max_staleness: Duration,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(1),
            max_staleness: Duration::from_secs(5),
        }
    }
}

impl RevocationSettings {
    /// Reading every `refresh`, refusing after `max_staleness` (raised to `refresh` if less).
    pub fn new(refresh: Duration, max_staleness: Duration) -> Self {
        Self {
            refresh,
            max_staleness: max_staleness.max(refresh),
        }
    }
}

/// The revocations in force, as seen by this replica: a router gate, and the way to revoke.
/// Clones share one view.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<dyn SharedState>,
    settings: RevocationSettings,
    view: RwLock<Arc<RevocationList>>,
    /// When the view was last read, in milliseconds since the epoch.
    read_at_ms: AtomicI64,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("settings", &self.inner.settings)
            .field("revoked", &self.list().len())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Revocations {
    /// Reads the list from `state` once (an error if it cannot), then again every
    /// `settings.refresh` ([`Revocations::keep_fresh`]).
    pub async fn start(
        state: Arc<dyn SharedState>,
        settings: RevocationSettings,
    ) -> Result<Self, Error> {
        let revocations = Self::new(state, settings);
        revocations.refresh().await?;
        revocations.keep_fresh();
        Ok(revocations)
    }

    /// The revocations of `state`, not read yet: until a first [`Revocations::refresh`], the
    /// gate refuses every resolution (its copy is out of date).
    pub fn new(state: Arc<dyn SharedState>, settings: RevocationSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                state,
                settings,
                view: RwLock::new(Arc::new(RevocationList::default())),
                read_at_ms: AtomicI64::new(0),
            }),
        }
    }

    /// Reads the list every `settings.refresh`, in a task of the current Tokio runtime, for
    /// as long as a clone of this lives.
    pub fn keep_fresh(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.settings.refresh;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(err) = (Self { inner }).refresh().await {
                    warn!(error = %err, "the revocation list could not be read");
                }
            }
        });
    }

    /// Reads the list now.
    pub async fn refresh(&self) -> Result<(), Error> {
        let started = now_ms();
        let list = match self.inner.state.read(LIST_KEY).await? {
            Some((document, _)) => RevocationList::from_document(&document)?,
            None => RevocationList::default(),
        };
        self.set_view(list, started);
        Ok(())
    }

    fn set_view(&self, list: RevocationList, read_at_ms: i64) {
        *self
            .inner
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(list);
        // The time the read started: the copy is at least as new as that.
        self.inner
            .read_at_ms
            .fetch_max(read_at_ms, Ordering::Release);
    }

    /// The list as this replica sees it.
    pub fn list(&self) -> Arc<RevocationList> {
        self.inner
            .view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether this replica's copy is too old to serve by.
    fn is_stale(&self) -> bool {
        let age = now_ms().saturating_sub(self.inner.read_at_ms.load(Ordering::Acquire));
        u128::try_from(age).unwrap_or(0) > self.inner.settings.max_staleness.as_millis()
    }

    /// Revokes what `revocation` names, on every replica: written to the shared list (by
    /// check-and-set, entries whose `until` has passed dropped), in force here at once, and
    /// everywhere when this returns (after `max_staleness`). Revoking what is revoked already
    /// keeps the first record.
    pub async fn revoke(&self, revocation: Revocation) -> Result<Revoked, Error> {
        let now = OffsetDateTime::now_utc();
        let mut attempts = 0;
        let record = loop {
            attempts += 1;
            if attempts > WRITE_ATTEMPTS {
                return Err(Error::unavailable(
                    "revocations",
                    "the revocation list kept changing under this write; nothing was revoked",
                ));
            }
            let started = now_ms();
            let current = self.inner.state.read(LIST_KEY).await?;
            let (mut list, version) = match current {
                Some((document, version)) => {
                    (RevocationList::from_document(&document)?, Some(version))
                }
                None => (RevocationList::default(), None),
            };
            list.prune(now);
            let record = list.add(revocation.clone(), now);
            if self
                .inner
                .state
                .write_if(LIST_KEY, &list.to_document(), version)
                .await?
                .is_some()
            {
                self.set_view(list, started);
                break record;
            }
        };
        info!(
            what = record.describe(),
            by = record.by.as_deref().unwrap_or(""),
            "revoked"
        );
        tokio::time::sleep(self.inner.settings.max_staleness).await;
        Ok(record)
    }

    /// Whether `secret` is revoked.
    pub fn is_secret_revoked(&self, secret: &Secret) -> bool {
        self.list().has_secret(secret)
    }
}

#[async_trait::async_trait]
impl Gate for Revocations {
    async fn admit(
        &self,
        admission: &Admission<'_>,
        resolution: &mut Resolution,
    ) -> Result<(), DenialReason> {
        if self.is_stale() {
            return Err(DenialReason::StoreUnavailable {
                store: "revocations".into(),
                detail: "this replica's copy of the revocation list is out of date".into(),
                retryable: true,
            });
        }
        let list = self.list();
        if list.is_empty() {
            return Ok(());
        }
        if list.has_credential(&resolution.credential_id) {
            return Err(DenialReason::NotActive {
                credential_id: resolution.credential_id.clone(),
                status: CredentialStatus::Revoked,
            });
        }
        if let Some(secret) = resolution.secret()
            && list.has_secret(secret)
        {
            return Err(DenialReason::ConsentRequired {
                store: admission
                    .rule
                    .store
                    .clone()
                    .unwrap_or_else(|| identity_router::DEFAULT_STORE.into()),
                provider: resolution
                    .provider
                    .clone()
                    .unwrap_or_else(|| admission.context.provider.clone()),
                user_id: admission.context.user_id.clone(),
                scopes: Vec::new(),
                detail: "the connection was revoked; connect again".into(),
            });
        }
        Ok(())
    }
}
