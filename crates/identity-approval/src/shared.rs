//! [`SharedApprovals`]: approvals in a shared state (Vault, Redis), shared by replicas.

use std::sync::Arc;

use identity_core::{Error, OffsetDateTime};
use identity_state::SharedState;
use serde_json::json;

use crate::record::Approval;
use crate::store::{ApprovalStore, Versioned};

/// Approvals kept in a [`SharedState`] (Vault or OpenBao KV v2, Redis): each approval at
/// `approvals/<id>`, and the approval that stands for each call at `calls/<digest>`. Every
/// change is a check-and-set on the version read: of two replicas that use one approval, one
/// succeeds and the other finds it used.
///
/// ```
/// # use identity_vault::{VaultAuth, VaultCredentialStore};
/// let vault = VaultCredentialStore::builder("http://127.0.0.1:8200", VaultAuth::token(identity_core::Secret::new("t"))).build()?;
/// let documents = vault.documents("agent-identity-approvals")?;
/// let approvals = identity_approval::SharedApprovals::new(std::sync::Arc::new(documents));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SharedApprovals {
    documents: Arc<dyn SharedState>,
}

impl SharedApprovals {
    /// Approvals kept in `documents`.
    ///
    /// ```
    /// let approvals = identity_approval::SharedApprovals::new(
    ///     std::sync::Arc::new(identity_state::MemoryState::default()),
    /// );
    /// ```
    pub fn new(documents: Arc<dyn SharedState>) -> Self {
        Self { documents }
    }

    fn decode(value: serde_json::Value, key: &str) -> Result<Approval, Error> {
        serde_json::from_value(value).map_err(|err| {
            Error::unavailable(
                "shared state",
                format!("the approval at `{key}` cannot be read: {err}"),
            )
        })
    }

    fn encode(approval: &Approval) -> Result<serde_json::Value, Error> {
        serde_json::to_value(approval).map_err(|err| {
            Error::unavailable(
                "shared state",
                format!("an approval cannot be written: {err}"),
            )
        })
    }
}

#[async_trait::async_trait]
impl ApprovalStore for SharedApprovals {
    async fn create(&self, approval: &Approval, now: OffsetDateTime) -> Result<Versioned, Error> {
        let index = format!("calls/{}", approval.call_digest);
        // Two rounds at most: a replica that loses the index to another reads the winner.
        for _ in 0..2 {
            let standing = self.documents.read(&index).await?;
            let index_version = standing.as_ref().map(|(_, version)| *version);
            if let Some(id) = standing
                .as_ref()
                .and_then(|(value, _)| value.get("id")?.as_str().map(str::to_owned))
                && let Some(held) = self.get(&id).await?
                && held.approval.is_live(now)
            {
                return Ok(held);
            }
            let key = format!("approvals/{}", approval.id);
            let Some(version) = self
                .documents
                .write_if(&key, &Self::encode(approval)?, None)
                .await?
            else {
                return Err(Error::unavailable(
                    "shared state",
                    format!("approval `{}` exists already", approval.id),
                ));
            };
            if self
                .documents
                .write_if(&index, &json!({ "id": approval.id }), index_version)
                .await?
                .is_some()
            {
                return Ok(Versioned {
                    approval: approval.clone(),
                    version,
                });
            }
            // Another replica held the same call first: this one is not kept.
            self.documents.delete(&key).await?;
        }
        Err(Error::unavailable(
            "shared state",
            "the approval of the call kept changing; try again",
        ))
    }

    async fn get(&self, id: &str) -> Result<Option<Versioned>, Error> {
        let key = format!("approvals/{id}");
        match self.documents.read(&key).await? {
            Some((value, version)) => Ok(Some(Versioned {
                approval: Self::decode(value, &key)?,
                version,
            })),
            None => Ok(None),
        }
    }

    async fn for_call(&self, digest: &str) -> Result<Option<Versioned>, Error> {
        let Some((value, _)) = self.documents.read(&format!("calls/{digest}")).await? else {
            return Ok(None);
        };
        match value.get("id").and_then(|id| id.as_str()) {
            Some(id) => self.get(id).await,
            None => Ok(None),
        }
    }

    async fn replace(&self, approval: &Approval, version: u64) -> Result<bool, Error> {
        Ok(self
            .documents
            .write_if(
                &format!("approvals/{}", approval.id),
                &Self::encode(approval)?,
                Some(version),
            )
            .await?
            .is_some())
    }

    async fn list(&self) -> Result<Vec<Approval>, Error> {
        let mut all = Vec::new();
        for key in self.documents.list("approvals").await? {
            if let Some((value, _)) = self.documents.read(&key).await? {
                all.push(Self::decode(value, &key)?);
            }
        }
        all.sort_by_key(|approval| std::cmp::Reverse(approval.created_at));
        Ok(all)
    }
}
