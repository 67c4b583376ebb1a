//! Where replicas keep what they share (a Vault store's KV mount, or a `[redis.<name>]`
//! server), and what one process keeps across reloads of its configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use agent_identity::ConfigError;
use agent_identity::identity_approval::ApprovalSigner;
use agent_identity::identity_budget::{BudgetConfig, MemoryCounters};
use agent_identity::identity_oauth::MemoryTokens;
use agent_identity::identity_redis::Redis;
use agent_identity::identity_seal::Keyring;
use agent_identity::identity_state::{MemoryState, Namespaced, SharedState};
use agent_identity::identity_vault::VaultCredentialStore;

/// What this process keeps for as long as it runs, whatever configuration it reloads: the
/// state kept in memory (users' connections, registered clients, approvals, budget counts)
/// and the keys made at start (for cookies, sealing and approval statements). A reload builds
/// new stores and gates over the same, so that it loses nothing it would keep.
pub struct Retained {
    memory: Arc<MemoryState>,
    /// Users' connections kept in memory: apart from the documents, so that the hot path of a
    /// user's resolution reads a map, not a sealed document.
    tokens: Arc<MemoryTokens>,
    ring: Keyring,
    signers: Mutex<HashMap<String, ApprovalSigner>>,
    counters: Mutex<Option<(Vec<BudgetConfig>, Arc<MemoryCounters>)>>,
}

impl std::fmt::Debug for Retained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retained")
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl Retained {
    /// What a process starts with: empty memory, a key made now.
    ///
    /// ```
    /// let retained = agent_identity_server::config::Retained::new()?;
    /// # Ok::<(), String>(())
    /// ```
    pub fn new() -> Result<Self, String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| "the system's random source failed".to_owned())?;
        Ok(Self {
            memory: Arc::new(MemoryState::default()),
            tokens: Arc::default(),
            ring: Keyring::new("process", key),
            signers: Mutex::default(),
            counters: Mutex::default(),
        })
    }

    /// The part of this process's memory under `namespace`.
    pub(crate) fn memory(&self, namespace: &str) -> Arc<dyn SharedState> {
        let memory: Arc<dyn SharedState> = self.memory.clone();
        match Namespaced::new(memory.clone(), namespace) {
            Ok(part) => Arc::new(part),
            // Namespaces are the sidecar's own names, always valid keys.
            Err(_) => memory,
        }
    }

    /// Users' connections kept in this process's memory.
    pub(crate) fn tokens(&self) -> Arc<MemoryTokens> {
        self.tokens.clone()
    }

    /// The key made at start, for what needs sealing and has no configured key.
    pub(crate) fn ring(&self) -> &Keyring {
        &self.ring
    }

    /// The approval signer made at start for `key_id`.
    pub(crate) fn signer(&self, key_id: &str) -> Result<ApprovalSigner, String> {
        let mut signers = self.signers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signer) = signers.get(key_id) {
            return Ok(signer.clone());
        }
        let signer = ApprovalSigner::generate(key_id).map_err(|err| err.to_string())?;
        signers.insert(key_id.to_owned(), signer.clone());
        Ok(signer)
    }

    /// The budget counts in memory for `configs`: the ones kept while the budgets stay the
    /// same, new ones when they change.
    pub(crate) fn counters(
        &self,
        configs: &[BudgetConfig],
    ) -> Result<Arc<MemoryCounters>, ConfigError> {
        let mut kept = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((same, counters)) = kept.as_ref()
            && same.as_slice() == configs
        {
            return Ok(counters.clone());
        }
        let counters = Arc::new(MemoryCounters::new(configs)?);
        *kept = Some((configs.to_vec(), counters.clone()));
        Ok(counters)
    }
}

/// The places a section may name for shared state (the configuration's Vault stores and Redis
/// servers, by name), and what the process retains.
#[derive(Debug)]
pub(crate) struct SharedPlaces {
    pub(crate) vaults: BTreeMap<String, Arc<VaultCredentialStore>>,
    pub(crate) redis: BTreeMap<String, Redis>,
    pub(crate) retained: Arc<Retained>,
}

impl SharedPlaces {
    /// No places yet, over `retained`.
    pub(crate) fn new(retained: Arc<Retained>) -> Self {
        Self {
            vaults: BTreeMap::new(),
            redis: BTreeMap::new(),
            retained,
        }
    }
}

/// A section's choice of shared state: the field naming a Vault store (and the field giving
/// the path under its mount), the field naming a Redis server (and the namespace used there).
pub(crate) struct Choice<'a> {
    pub(crate) vault: (&'static str, Option<&'a str>),
    pub(crate) vault_prefix: (&'static str, &'a str),
    pub(crate) redis: (&'static str, Option<&'a str>),
    pub(crate) namespace: &'a str,
}

impl SharedPlaces {
    /// The shared state `choice` names in section `location`; `None` when it names none.
    pub(crate) fn state(
        &self,
        location: &str,
        choice: &Choice<'_>,
    ) -> Result<Option<Arc<dyn SharedState>>, ConfigError> {
        let problem = |field: &str, text: String| ConfigError::new(location, Some(field), text);
        let (vault_field, vault) = choice.vault;
        let (redis_field, redis) = choice.redis;
        match (vault, redis) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(problem(
                redis_field,
                format!("names a second place for what `{vault_field}` keeps: keep one"),
            )),
            (Some(name), None) => {
                let vault = self.vaults.get(name).ok_or_else(|| {
                    problem(
                        vault_field,
                        format!("names no store of type \"vault\": `{name}`"),
                    )
                })?;
                let (prefix_field, prefix) = choice.vault_prefix;
                let documents = vault
                    .documents(prefix)
                    .map_err(|err| problem(prefix_field, err.to_string()))?;
                Ok(Some(Arc::new(documents)))
            }
            (None, Some(name)) => {
                let redis = self.redis.get(name).ok_or_else(|| {
                    problem(redis_field, format!("names no `[redis.{name}]` section"))
                })?;
                let state = redis
                    .state(choice.namespace)
                    .map_err(|err| problem(redis_field, err.to_string()))?;
                Ok(Some(Arc::new(state)))
            }
        }
    }
}
