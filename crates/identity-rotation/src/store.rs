//! [`RotatingStore`]: counts, rotates and retires, over any writable store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use identity_core::{
    Capabilities, Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter,
    Error, OffsetDateTime, RequestContext, Secret, async_trait,
};
use identity_state::SharedState;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::issuer::SecretIssuer;
use crate::policy::{RotationNotice, RotationObserver, RotationPolicy};

/// The suffix of the slot that holds a credential's previous version during its grace window:
/// `openai-prod@previous`.
pub const PREVIOUS_SUFFIX: &str = "@previous";

/// How long a replica may hold the rotation lease of a slot (a rotation that takes longer is
/// taken over).
const LEASE_TTL: Duration = Duration::from_secs(30);

/// How many times a count is tried again after another replica wrote first.
const COUNT_ATTEMPTS: usize = 64;

type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// A writable store whose credentials rotate by [`RotationPolicy`]; see the
/// [crate documentation](crate). `Debug` shows the policy and the backend.
pub struct RotatingStore<S> {
    store: Arc<S>,
    state: Arc<dyn SharedState>,
    issuer: Arc<dyn SecretIssuer>,
    policy: RotationPolicy,
    observer: Option<Arc<dyn RotationObserver>>,
    /// This store's name as a lease holder; each attempt adds a number of its own.
    holder: String,
    attempts: std::sync::atomic::AtomicU64,
    clock: Clock,
}

impl<S: CredentialStore> fmt::Debug for RotatingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingStore")
            .field("backend", &self.store.backend())
            .field("policy", &self.policy)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What the shared state keeps of one slot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tally {
    /// The version counted.
    credential_id: String,
    /// Its resolutions so far.
    uses: u64,
    /// Since when it is in use (seconds since the epoch).
    since: i64,
    /// Whether the observer was told it is due soon.
    notified: bool,
    /// The previous version, while in its grace window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
    /// The end of that window (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_until: Option<i64>,
}

fn tally_key(reference: &CredentialRef) -> String {
    // Hex, so that any ref makes a valid key of every shared state.
    let hex: String = reference
        .as_str()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("rotation/{hex}")
}

fn lease_key(reference: &CredentialRef) -> String {
    format!("{}.lease", tally_key(reference))
}

fn previous_ref(reference: &CredentialRef) -> Result<CredentialRef, Error> {
    CredentialRef::new(format!("{}{PREVIOUS_SUFFIX}", reference.as_str()))
}

/// `openai-v3` → `openai-v4`; `openai` → `openai-v2`.
fn next_id(id: &str) -> String {
    if let Some((base, number)) = id.rsplit_once("-v")
        && let Ok(number) = number.parse::<u64>()
    {
        return format!("{base}-v{}", number.saturating_add(1));
    }
    format!("{id}-v2")
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn at(timestamp: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(timestamp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl<S: CredentialWriter> RotatingStore<S> {
    /// `store`'s credentials rotated by `policy` with secrets from `issuer`, counted in `state`
    /// (shared by the replicas). An unusable policy is an error.
    pub fn new(
        store: S,
        state: Arc<dyn SharedState>,
        issuer: Arc<dyn SecretIssuer>,
        policy: RotationPolicy,
    ) -> Result<Self, Error> {
        policy.check()?;
        let mut id = [0u8; 12];
        getrandom::fill(&mut id)
            .map_err(|_| Error::unavailable("rotation", "the system's random source failed"))?;
        Ok(Self {
            store: Arc::new(store),
            state,
            issuer,
            policy,
            observer: None,
            holder: id.iter().map(|b| format!("{b:02x}")).collect(),
            attempts: std::sync::atomic::AtomicU64::new(0),
            clock: Arc::new(OffsetDateTime::now_utc),
        })
    }

    /// Tells `observer` before a rotation is due, and of each rotation and retirement.
    pub fn with_observer(mut self, observer: Arc<dyn RotationObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The clock ages are read on (the system's by default); for tests.
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store written through.
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// A holder name for one attempt: a lease is re-entrant for its holder, and two
    /// resolutions of this store at once must not both hold it.
    fn attempt(&self) -> String {
        let n = self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n}", self.holder)
    }

    fn tell(&self, notice: RotationNotice) {
        if let Some(observer) = &self.observer {
            observer.notify(&notice);
        }
    }

    /// Counts one use of `current`, starting a new tally when the version changed; the tally
    /// after it, and whether this count is the one that crossed the notice. `None` when
    /// `current` is the version a rotation replaced (read just before it): nothing is counted.
    async fn count_use(
        &self,
        reference: &CredentialRef,
        current: &Credential,
        now: OffsetDateTime,
    ) -> Result<Option<(Tally, bool)>, Error> {
        let key = tally_key(reference);
        for _ in 0..COUNT_ATTEMPTS {
            let read = self.state.read(&key).await?;
            let version = read.as_ref().map(|(_, version)| *version);
            let mut tally: Tally = match read {
                Some((document, _)) => serde_json::from_value(document).unwrap_or_default(),
                None => Tally::default(),
            };
            if tally.previous.as_deref() == Some(current.id.as_str()) {
                return Ok(None);
            }
            if tally.credential_id != current.id {
                let since = current
                    .last_rotated
                    .map_or(now.unix_timestamp(), OffsetDateTime::unix_timestamp);
                tally = Tally {
                    credential_id: current.id.clone(),
                    since,
                    previous: tally.previous,
                    previous_until: tally.previous_until,
                    ..Tally::default()
                };
            }
            tally.uses = tally.uses.saturating_add(1);
            let notify = !tally.notified
                && self.due_at(&tally).is_some_and(|due_at| {
                    let notice = self.policy.notice.map_or(0, seconds);
                    now.unix_timestamp() >= due_at.unix_timestamp().saturating_sub(notice)
                });
            tally.notified |= notify;
            let document = serde_json::to_value(&tally).unwrap_or_default();
            if self
                .state
                .write_if(&key, &document, version)
                .await?
                .is_some()
            {
                return Ok(Some((tally, notify)));
            }
        }
        Err(Error::unavailable(
            "rotation",
            "the use count kept losing to other replicas",
        ))
    }

    /// When a rotation by age falls due for `tally`.
    fn due_at(&self, tally: &Tally) -> Option<OffsetDateTime> {
        let after = self.policy.after?;
        Some(at(tally.since.saturating_add(seconds(after))))
    }

    fn is_due(&self, tally: &Tally, now: OffsetDateTime) -> bool {
        let by_uses = self.policy.after_uses.is_some_and(|n| tally.uses > n);
        let by_age = self.due_at(tally).is_some_and(|due_at| now >= due_at);
        by_uses || by_age
    }

    /// Rotates the slot if `current` is still its version: under the slot's lease, so that of
    /// replicas finding it due at once one rotates. `None` when another replica holds the lease.
    async fn rotate(
        &self,
        reference: &CredentialRef,
        current: &Credential,
        ctx: &RequestContext,
        now: OffsetDateTime,
    ) -> Result<Option<Credential>, Error> {
        let (lease, holder) = (lease_key(reference), self.attempt());
        if !self.state.try_lease(&lease, &holder, LEASE_TTL).await? {
            return Ok(None);
        }
        let rotated = self.rotate_held(reference, current, ctx, now).await;
        if let Err(err) = self.state.release(&lease, &holder).await {
            warn!(error = %err, "a rotation lease could not be given back; it lapses");
        }
        rotated.map(Some)
    }

    async fn rotate_held(
        &self,
        reference: &CredentialRef,
        current: &Credential,
        ctx: &RequestContext,
        now: OffsetDateTime,
    ) -> Result<Credential, Error> {
        // Read again under the lease: another replica may have rotated since.
        let Some(fresh) = self.store.find_by_ref(reference, ctx).await? else {
            return Err(Error::credential_not_found(reference.as_str()));
        };
        if fresh.id != current.id {
            return Ok(fresh);
        }
        let secret: Secret = self.issuer.issue(&fresh).await?;
        let grace_until = now + self.policy.grace;
        // The previous version, beside the slot, valid to the end of its grace window.
        let mut previous = fresh.clone();
        previous.reference = previous_ref(reference)?;
        previous.expires_at = Some(match fresh.expires_at {
            Some(expiry) => expiry.min(grace_until),
            None => grace_until,
        });
        self.store.put(previous).await?;
        let mut next = fresh.clone().with_secret(secret);
        next.id = next_id(&fresh.id);
        next.last_rotated = Some(now);
        self.store.put(next.clone()).await?;
        let tally = Tally {
            credential_id: next.id.clone(),
            uses: 1,
            since: now.unix_timestamp(),
            notified: false,
            previous: Some(fresh.id.clone()),
            previous_until: Some(grace_until.unix_timestamp()),
        };
        self.write_tally(reference, &tally).await?;
        info!(
            target: "agent_identity::audit",
            event = "rotated",
            reference = reference.as_str(),
            from = fresh.id.as_str(),
            to = next.id.as_str(),
            grace_until = %grace_until,
            "credential rotated"
        );
        self.tell(RotationNotice::Rotated {
            reference: reference.as_str().to_owned(),
            from: fresh.id,
            to: next.id.clone(),
            grace_until,
        });
        Ok(next)
    }

    /// Writes `tally` whatever version is there (the writer holds the slot's lease).
    async fn write_tally(&self, reference: &CredentialRef, tally: &Tally) -> Result<(), Error> {
        let key = tally_key(reference);
        let document = serde_json::to_value(tally).unwrap_or_default();
        for _ in 0..COUNT_ATTEMPTS {
            let version = self.state.read(&key).await?.map(|(_, version)| version);
            if self
                .state
                .write_if(&key, &document, version)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(Error::unavailable(
            "rotation",
            "the rotation could not be recorded",
        ))
    }

    /// Retires the previous version of `reference` when its grace window is over (the issuer
    /// told, the `@previous` slot deleted): `true` when one was retired. Resolutions of the
    /// slot do it as they pass; a sweep may call it too.
    pub async fn retire_due(&self, reference: &CredentialRef) -> Result<bool, Error> {
        let now = (self.clock)();
        let key = tally_key(reference);
        let Some((document, _)) = self.state.read(&key).await? else {
            return Ok(false);
        };
        let tally: Tally = serde_json::from_value(document).unwrap_or_default();
        let (Some(previous_id), Some(until)) = (tally.previous.clone(), tally.previous_until)
        else {
            return Ok(false);
        };
        if now.unix_timestamp() < until {
            return Ok(false);
        }
        let (lease, holder) = (lease_key(reference), self.attempt());
        if !self.state.try_lease(&lease, &holder, LEASE_TTL).await? {
            return Ok(false);
        }
        let retired = self.retire_held(reference, &previous_id).await;
        if let Err(err) = self.state.release(&lease, &holder).await {
            warn!(error = %err, "a rotation lease could not be given back; it lapses");
        }
        retired
    }

    async fn retire_held(
        &self,
        reference: &CredentialRef,
        previous_id: &str,
    ) -> Result<bool, Error> {
        let key = tally_key(reference);
        let Some((document, _)) = self.state.read(&key).await? else {
            return Ok(false);
        };
        let mut tally: Tally = serde_json::from_value(document).unwrap_or_default();
        if tally.previous.as_deref() != Some(previous_id) {
            return Ok(false);
        }
        let slot = previous_ref(reference)?;
        let ctx = retirement_context();
        if let Some(previous) = self.store.find_by_ref(&slot, &ctx).await? {
            self.issuer.retire(&previous).await?;
        }
        self.store.delete(&slot).await?;
        tally.previous = None;
        tally.previous_until = None;
        self.write_tally(reference, &tally).await?;
        info!(
            target: "agent_identity::audit",
            event = "retired",
            reference = reference.as_str(),
            credential_id = previous_id,
            "previous credential retired"
        );
        self.tell(RotationNotice::Retired {
            reference: reference.as_str().to_owned(),
            credential_id: previous_id.to_owned(),
        });
        Ok(true)
    }
}

/// The context a retirement reads the previous version with: nobody's request.
fn retirement_context() -> RequestContext {
    RequestContext::builder()
        .user_id("rotation")
        .resource_id("rotation")
        .resource_kind(identity_core::ResourceKind::Shared)
        .provider("rotation")
        .model("rotation")
        .action("read")
        .trace_id("rotation")
        .build()
        .unwrap_or_else(|_| unreachable!("every field of the retirement context is set"))
}

#[async_trait]
impl<S: CredentialWriter> CredentialStore for RotatingStore<S> {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    async fn health(&self) -> Result<(), Error> {
        self.store.health().await
    }

    /// The slot's credential, counted; rotated first when it is due (this resolution then gets
    /// the new version). A rotation that fails leaves the current version served, and is tried
    /// again at the next resolution. A `@previous` slot is read as it is.
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        ctx: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        if reference.as_str().ends_with(PREVIOUS_SUFFIX) {
            return self.store.find_by_ref(reference, ctx).await;
        }
        let Some(current) = self.store.find_by_ref(reference, ctx).await? else {
            return Ok(None);
        };
        let now = (self.clock)();
        let Some((tally, notify)) = self.count_use(reference, &current, now).await? else {
            // Read just before another replica rotated it: the new version is the answer.
            return self.store.find_by_ref(reference, ctx).await;
        };
        if notify && let Some(due_at) = self.due_at(&tally) {
            self.tell(RotationNotice::DueSoon {
                reference: reference.as_str().to_owned(),
                credential_id: current.id.clone(),
                due_at,
            });
        }
        if tally
            .previous_until
            .is_some_and(|until| now.unix_timestamp() >= until)
            && let Err(err) = self.retire_due(reference).await
        {
            warn!(error = %err, reference = reference.as_str(), "a previous version could not be retired");
        }
        if !self.is_due(&tally, now) {
            return Ok(Some(current));
        }
        match self.rotate(reference, &current, ctx, now).await {
            Ok(Some(next)) => Ok(Some(next)),
            Ok(None) => Ok(Some(current)),
            Err(err) => {
                warn!(error = %err, reference = reference.as_str(), "a due rotation failed; the current version is served");
                Ok(Some(current))
            }
        }
    }

    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        self.store.list_active().await
    }

    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        self.store.list_by_kind(kind).await
    }

    async fn count(&self) -> Result<usize, Error> {
        self.store.count().await
    }

    async fn forget_refused(
        &self,
        reference: &CredentialRef,
        context: &RequestContext,
        secret: &Secret,
    ) -> Result<(), Error> {
        self.store.forget_refused(reference, context, secret).await
    }
}

#[async_trait]
impl<S: CredentialWriter> CredentialWriter for RotatingStore<S> {
    async fn put(&self, credential: Credential) -> Result<(), Error> {
        self.store.put(credential).await
    }

    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
        self.store.delete(reference).await
    }
}

#[cfg(test)]
mod tests {
    use super::next_id;

    #[test]
    fn versions_count_up() {
        assert_eq!(next_id("openai-v3"), "openai-v4");
        assert_eq!(next_id("openai"), "openai-v2");
        assert_eq!(next_id("key-vault"), "key-vault-v2");
    }
}
