//! Helpers shared by the router's tests.
#![allow(dead_code, reason = "each test crate uses a different subset")]
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use std::sync::Arc;

use identity_core::{
    Credential, CredentialKind, CredentialRef, CredentialStore, Error, MigrationPhase,
    RequestContext, RequestContextBuilder, ResourceKind, Secret, async_trait,
};
use identity_memory::MemoryCredentialStore;

pub(crate) fn ctx() -> RequestContextBuilder {
    RequestContext::builder()
        .user_id("alice")
        .resource_id("docs")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("gpt-4o")
        .action("read")
        .trace_id("trace-1")
}

pub(crate) fn build(builder: RequestContextBuilder) -> RequestContext {
    builder.build().unwrap()
}

pub(crate) fn phase_ctx(phase: MigrationPhase) -> RequestContext {
    build(ctx().phase(phase).migration_id("m1"))
}

pub(crate) fn fixed(id: &str, reference: &str) -> Credential {
    Credential::new(id, CredentialKind::Fixed, reference)
        .unwrap()
        .with_scope("read")
        .with_secret(Secret::new(format!("secret-of-{id}")))
}

pub(crate) fn delegated(id: &str, reference: &str) -> Credential {
    Credential::new(id, CredentialKind::UserDelegated, reference)
        .unwrap()
        .with_scope("read")
        .with_secret(Secret::new(format!("secret-of-{id}")))
}

pub(crate) fn store_with(
    credentials: impl IntoIterator<Item = Credential>,
) -> Arc<MemoryCredentialStore> {
    Arc::new(MemoryCredentialStore::from_credentials(credentials).unwrap())
}

/// A store that cannot answer. A real backend that is down gives the same `Unavailable` error;
/// this one gives it on demand, in process, for tests of the router's handling of it.
#[derive(Debug)]
pub(crate) struct DownStore;

#[async_trait]
impl CredentialStore for DownStore {
    fn backend(&self) -> &'static str {
        "down"
    }
    async fn find_by_ref(
        &self,
        _: &CredentialRef,
        _: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        Err(Error::unavailable("down", "connection refused"))
    }
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        Err(Error::unavailable("down", "connection refused"))
    }
    async fn list_by_kind(&self, _: CredentialKind) -> Result<Vec<Credential>, Error> {
        Err(Error::unavailable("down", "connection refused"))
    }
}
