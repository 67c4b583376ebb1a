//! The conformance suite every credential store runs.
//!
//! Each backend crate calls [`run_conformance`] (or the single checks) in its tests, against the
//! real backend, with a namespace of its own so that runs do not see each other's data. The
//! suite panics with the name of the failed check and what was wrong, like `assert!` does.
//!
//! ```
//! async fn my_backend_conforms(store: &dyn identity_core::CredentialWriter) {
//!     identity_core::testing::run_conformance(store, "my-backend-run-1").await;
//! }
//! ```
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Credential, CredentialKind, CredentialRef, CredentialStatus, CredentialWriter, Error,
    RequestContext, ResourceKind, Secret, parse_rfc3339,
};

/// A secret planted by the suite; it must never show up in `Debug` output or errors.
pub const CANARY: &str = "canary-7f3a9c-do-not-leak";

/// Unwraps a store call's result, or fails the check, saying which call failed and how.
trait OrFail<T> {
    fn or_fail(self, check: &str, call: &str) -> T;
}

impl<T> OrFail<T> for Result<T, Error> {
    fn or_fail(self, check: &str, call: &str) -> T {
        self.unwrap_or_else(|e| match call {
            "" => panic!("{check}: {e}"),
            call => panic!("{check}: {call}: {e}"),
        })
    }
}

fn context() -> RequestContext {
    RequestContext::builder()
        .user_id("conformance-user")
        .resource_id("conformance-resource")
        .resource_kind(ResourceKind::Shared)
        .provider("openai")
        .model("gpt-4o")
        .action("read")
        .trace_id("conformance-trace")
        .build()
        .expect("the suite's context is valid")
}

fn reference(namespace: &str, name: &str) -> CredentialRef {
    CredentialRef::new(format!("{namespace}-{name}")).expect("the suite's refs are valid")
}

fn credential(
    namespace: &str,
    name: &str,
    kind: CredentialKind,
    status: CredentialStatus,
) -> Credential {
    Credential::new(
        format!("{namespace}-id-{name}"),
        kind,
        reference(namespace, name).as_str(),
    )
    .expect("the suite's credentials are valid")
    .with_name(format!("Conformance {name}"))
    .with_scope("read")
    .with_status(status)
    .with_provider("openai")
    .with_tag("suite", "conformance")
    .with_secret(Secret::new(format!("{CANARY}-{name}")))
}

fn in_namespace<'a>(
    namespace: &'a str,
    credentials: &'a [Credential],
) -> impl Iterator<Item = &'a Credential> {
    let prefix = format!("{namespace}-");
    credentials
        .iter()
        .filter(move |c| c.reference.as_str().starts_with(&prefix))
}

fn assert_same_metadata(check: &str, got: &Credential, want: &Credential) {
    assert_eq!(got.id, want.id, "{check}: id");
    assert_eq!(got.kind, want.kind, "{check}: kind");
    assert_eq!(got.name, want.name, "{check}: name");
    assert_eq!(got.scope, want.scope, "{check}: scope");
    assert_eq!(got.status, want.status, "{check}: status");
    assert_eq!(got.provider, want.provider, "{check}: provider");
    assert_eq!(got.reference, want.reference, "{check}: ref");
    assert_eq!(got.expires_at, want.expires_at, "{check}: expiresAt");
    assert_eq!(got.last_rotated, want.last_rotated, "{check}: lastRotated");
    assert_eq!(got.tags, want.tags, "{check}: tags");
}

/// Runs every check of the suite. `namespace` prefixes every ref the suite writes; use one per
/// run. Lease checks run when the store's capabilities say it has leases; otherwise the suite
/// checks that leases answer [`Error::NotSupported`].
pub async fn run_conformance(store: &dyn CredentialWriter, namespace: &str) {
    put_then_find_round_trips(store, namespace).await;
    find_unknown_is_none(store, namespace).await;
    find_returns_every_status(store, namespace).await;
    listings_filter_and_omit_secrets(store, namespace).await;
    put_replaces(store, namespace).await;
    count_follows_writes(store, namespace).await;
    delete_removes(store, namespace).await;
    concurrent_reads_and_writes(store, namespace).await;
    secrets_stay_out_of_debug_and_errors(store, namespace).await;
    if store.capabilities().leases {
        leases_are_exclusive(store, namespace).await;
        lease_release_by_non_owner_is_refused(store, namespace).await;
        leases_expire(store, namespace).await;
        concurrent_reservations_have_one_winner(store, namespace, 50).await;
    } else {
        leases_are_not_supported(store, namespace).await;
    }
}

/// A credential written is read back with every field and its secret.
pub async fn put_then_find_round_trips(store: &dyn CredentialWriter, namespace: &str) {
    let check = "put_then_find_round_trips";
    let mut want = credential(
        namespace,
        "round-trip",
        CredentialKind::UserDelegated,
        CredentialStatus::Active,
    );
    want.expires_at = Some(parse_rfc3339("2031-02-03T04:05:06Z").unwrap());
    want.last_rotated = Some(parse_rfc3339("2026-01-02T03:04:05+02:00").unwrap());
    want = want.with_tag("team", "data platform");
    store.put(want.clone()).await.or_fail(check, "put");
    let got = store
        .find_by_ref(&want.reference, &context())
        .await
        .or_fail(check, "find")
        .unwrap_or_else(|| panic!("{check}: the credential written was not found"));
    assert_same_metadata(check, &got, &want);
    let secret = got
        .secret
        .unwrap_or_else(|| panic!("{check}: the secret was not returned"));
    assert_eq!(
        secret.expose_secret(),
        format!("{CANARY}-round-trip"),
        "{check}: secret"
    );
}

/// An unknown ref is `None`, not an error.
pub async fn find_unknown_is_none(store: &dyn CredentialWriter, namespace: &str) {
    let check = "find_unknown_is_none";
    let found = store
        .find_by_ref(&reference(namespace, "never-written"), &context())
        .await
        .or_fail(check, "");
    assert!(
        found.is_none(),
        "{check}: found a credential that was never written"
    );
}

/// The store returns credentials whatever their status; refusing them is the router's job.
pub async fn find_returns_every_status(store: &dyn CredentialWriter, namespace: &str) {
    let check = "find_returns_every_status";
    for status in [
        CredentialStatus::Pending,
        CredentialStatus::Unclaimed,
        CredentialStatus::Revoked,
    ] {
        let name = format!("status-{status}");
        let want = credential(namespace, &name, CredentialKind::Fixed, status);
        store.put(want.clone()).await.or_fail(check, "put");
        let got = store
            .find_by_ref(&want.reference, &context())
            .await
            .or_fail(check, "find")
            .unwrap_or_else(|| panic!("{check}: a {status} credential was not returned"));
        assert_eq!(got.status, status, "{check}: status");
    }
}

/// `list_active` returns exactly the active credentials, `list_by_kind` exactly those of a kind;
/// neither carries secrets.
pub async fn listings_filter_and_omit_secrets(store: &dyn CredentialWriter, namespace: &str) {
    let check = "listings_filter_and_omit_secrets";
    let ns = format!("{namespace}-listing");
    let written = [
        credential(&ns, "a", CredentialKind::Fixed, CredentialStatus::Active),
        credential(
            &ns,
            "b",
            CredentialKind::UserDelegated,
            CredentialStatus::Active,
        ),
        credential(&ns, "c", CredentialKind::Fixed, CredentialStatus::Revoked),
        credential(
            &ns,
            "d",
            CredentialKind::UserDelegated,
            CredentialStatus::Pending,
        ),
    ];
    for c in &written {
        store.put(c.clone()).await.or_fail(check, "put");
    }
    let refs = |list: &[Credential]| -> BTreeSet<String> {
        in_namespace(&ns, list)
            .map(|c| c.reference.to_string())
            .collect()
    };
    let expect = |names: &[&str]| -> BTreeSet<String> {
        names
            .iter()
            .map(|n| reference(&ns, n).to_string())
            .collect()
    };

    let active = store.list_active().await.or_fail(check, "list_active");
    assert_eq!(refs(&active), expect(&["a", "b"]), "{check}: list_active");
    let fixed = store
        .list_by_kind(CredentialKind::Fixed)
        .await
        .or_fail(check, "list_by_kind");
    assert_eq!(
        refs(&fixed),
        expect(&["a", "c"]),
        "{check}: list_by_kind(fixed)"
    );
    let delegated = store
        .list_by_kind(CredentialKind::UserDelegated)
        .await
        .or_fail(check, "list_by_kind");
    assert_eq!(
        refs(&delegated),
        expect(&["b", "d"]),
        "{check}: list_by_kind(user-delegated)"
    );
    for listed in in_namespace(&ns, &active).chain(in_namespace(&ns, &fixed)) {
        assert!(
            listed.secret.is_none(),
            "{check}: a listing carried a secret"
        );
        let want = written
            .iter()
            .find(|w| w.reference == listed.reference)
            .unwrap();
        assert_same_metadata(check, listed, want);
    }
}

/// Writing a credential again replaces it, secret included (rotation).
pub async fn put_replaces(store: &dyn CredentialWriter, namespace: &str) {
    let check = "put_replaces";
    let first = credential(
        namespace,
        "rotated",
        CredentialKind::Fixed,
        CredentialStatus::Active,
    );
    store.put(first.clone()).await.or_fail(check, "put");
    let second = first
        .clone()
        .with_scope("read write")
        .with_secret(Secret::new(format!("{CANARY}-rotated-2")));
    store.put(second.clone()).await.or_fail(check, "put again");
    let got = store
        .find_by_ref(&first.reference, &context())
        .await
        .or_fail(check, "find")
        .unwrap_or_else(|| panic!("{check}: not found after rewrite"));
    assert_same_metadata(check, &got, &second);
    assert_eq!(
        got.secret.unwrap().expose_secret(),
        format!("{CANARY}-rotated-2"),
        "{check}: the new secret is served"
    );
}

/// Writing a credential under a new ref adds one to the count; rewriting it adds none.
pub async fn count_follows_writes(store: &dyn CredentialWriter, namespace: &str) {
    let check = "count_follows_writes";
    let before = store.count().await.or_fail(check, "count");
    let c = credential(
        namespace,
        "counted",
        CredentialKind::Fixed,
        CredentialStatus::Revoked,
    );
    store.put(c.clone()).await.or_fail(check, "put");
    let after = store.count().await.or_fail(check, "count");
    assert_eq!(
        after,
        before + 1,
        "{check}: a new credential was not counted"
    );
    store.put(c).await.or_fail(check, "put again");
    let again = store.count().await.or_fail(check, "count");
    assert_eq!(again, after, "{check}: a rewrite was counted twice");
}

/// A deleted credential is gone; deleting it again says there was none.
pub async fn delete_removes(store: &dyn CredentialWriter, namespace: &str) {
    let check = "delete_removes";
    let c = credential(
        namespace,
        "deleted",
        CredentialKind::Fixed,
        CredentialStatus::Active,
    );
    store.put(c.clone()).await.or_fail(check, "put");
    assert!(
        store.delete(&c.reference).await.or_fail(check, "delete"),
        "{check}: delete reported nothing deleted"
    );
    let found = store
        .find_by_ref(&c.reference, &context())
        .await
        .or_fail(check, "find");
    assert!(found.is_none(), "{check}: still found after delete");
    assert!(
        !store
            .delete(&c.reference)
            .await
            .or_fail(check, "delete again"),
        "{check}: second delete reported a deletion"
    );
    let active = store.list_active().await.or_fail(check, "list");
    assert!(
        active.iter().all(|l| l.reference != c.reference),
        "{check}: still listed after delete"
    );
}

/// Concurrent readers see either the old or the new credential, never an error or a mix.
pub async fn concurrent_reads_and_writes(store: &dyn CredentialWriter, namespace: &str) {
    let check = "concurrent_reads_and_writes";
    let base = credential(
        namespace,
        "concurrent",
        CredentialKind::Fixed,
        CredentialStatus::Active,
    );
    store.put(base.clone()).await.or_fail(check, "put");
    let ctx = context();
    let writes = (0..8).map(|i| {
        let c = base
            .clone()
            .with_scope(format!("scope-{i}"))
            .with_secret(Secret::new(format!("{CANARY}-{i}")));
        async move { store.put(c).await }
    });
    let reads = (0..32).map(|_| store.find_by_ref(&base.reference, &ctx));
    let (writes, reads) = futures::join!(
        futures::future::join_all(writes),
        futures::future::join_all(reads)
    );
    for result in writes {
        result.or_fail(check, "concurrent put");
    }
    for result in reads {
        let got = result
            .or_fail(check, "concurrent find")
            .unwrap_or_else(|| panic!("{check}: a reader saw no credential"));
        let secret = got.secret.unwrap();
        let secret = secret.expose_secret();
        // Scope and secret were written together; a reader must see a matching pair.
        let pair_ok = match got.scope.strip_prefix("scope-") {
            Some(i) => secret == format!("{CANARY}-{i}"),
            None => got.scope == base.scope && secret == format!("{CANARY}-concurrent"),
        };
        assert!(
            pair_ok,
            "{check}: a reader saw the scope of one write and the secret of another"
        );
    }
}

/// The planted canary secret appears in no `Debug` output and no error message.
pub async fn secrets_stay_out_of_debug_and_errors(store: &dyn CredentialWriter, namespace: &str) {
    let check = "secrets_stay_out_of_debug_and_errors";
    let c = credential(
        namespace,
        "canary",
        CredentialKind::Fixed,
        CredentialStatus::Active,
    );
    store.put(c.clone()).await.or_fail(check, "put");
    let found = store
        .find_by_ref(&c.reference, &context())
        .await
        .or_fail(check, "");
    let listed = store.list_active().await.or_fail(check, "");
    let debug = format!("{found:?} {listed:?} {store:?}");
    assert!(
        !debug.contains(CANARY),
        "{check}: the canary secret is in Debug output"
    );
    let json = serde_json::to_string(&found).unwrap();
    assert!(
        !json.contains(CANARY),
        "{check}: the canary secret is in the JSON form"
    );
    let err = store
        .release(&c.reference, "conformance-nobody")
        .await
        .err()
        .map(|e| format!("{e} {e:?}"))
        .unwrap_or_default();
    assert!(
        !err.contains(CANARY),
        "{check}: the canary secret is in an error"
    );
}

/// Without leases, both lease calls answer `NotSupported`.
pub async fn leases_are_not_supported(store: &dyn CredentialWriter, namespace: &str) {
    let check = "leases_are_not_supported";
    let r = reference(namespace, "no-lease");
    let reserve = store.reserve(&r, "m1", Duration::from_secs(60)).await;
    assert!(
        matches!(reserve, Err(Error::NotSupported { .. })),
        "{check}: reserve gave {reserve:?}"
    );
    let release = store.release(&r, "m1").await;
    assert!(
        matches!(release, Err(Error::NotSupported { .. })),
        "{check}: release gave {release:?}"
    );
}

/// A lease excludes other migrations, the holder may renew it, and a release frees it.
pub async fn leases_are_exclusive(store: &dyn CredentialWriter, namespace: &str) {
    let check = "leases_are_exclusive";
    let c = credential(
        namespace,
        "leased",
        CredentialKind::Fixed,
        CredentialStatus::Active,
    );
    store.put(c.clone()).await.or_fail(check, "put");
    let r = &c.reference;
    let ttl = Duration::from_secs(60);
    let reserve = |m: &'static str| store.reserve(r, m, ttl);
    assert!(
        reserve("m1").await.or_fail(check, ""),
        "{check}: first reserve lost"
    );
    assert!(
        !reserve("m2").await.or_fail(check, ""),
        "{check}: a second migration took a held lease"
    );
    assert!(
        reserve("m1").await.or_fail(check, ""),
        "{check}: the holder could not renew"
    );
    store.release(r, "m1").await.or_fail(check, "release");
    assert!(
        reserve("m2").await.or_fail(check, ""),
        "{check}: a released lease could not be taken"
    );
    store.release(r, "m2").await.or_fail(check, "release");
    store
        .release(r, "m2")
        .await
        .or_fail(check, "releasing a free lease failed");
}

/// Only the holder may release a lease.
pub async fn lease_release_by_non_owner_is_refused(store: &dyn CredentialWriter, namespace: &str) {
    let check = "lease_release_by_non_owner_is_refused";
    let r = reference(namespace, "owned-lease");
    assert!(
        store
            .reserve(&r, "owner", Duration::from_secs(60))
            .await
            .or_fail(check, "")
    );
    let stolen = store.release(&r, "intruder").await;
    assert!(
        matches!(stolen, Err(Error::LeaseHeld { .. })),
        "{check}: release by a non-owner gave {stolen:?}"
    );
    assert!(
        !store
            .reserve(&r, "intruder", Duration::from_secs(60))
            .await
            .or_fail(check, ""),
        "{check}: the refused release freed the lease"
    );
    store.release(&r, "owner").await.or_fail(check, "");
}

/// A lease not renewed lapses after its TTL.
pub async fn leases_expire(store: &dyn CredentialWriter, namespace: &str) {
    let check = "leases_expire";
    let r = reference(namespace, "short-lease");
    assert!(
        store
            .reserve(&r, "m1", Duration::from_secs(1))
            .await
            .or_fail(check, "")
    );
    assert!(
        !store
            .reserve(&r, "m2", Duration::from_secs(1))
            .await
            .or_fail(check, "")
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        store
            .reserve(&r, "m2", Duration::from_secs(60))
            .await
            .or_fail(check, ""),
        "{check}: an expired lease still excluded others"
    );
    store.release(&r, "m2").await.or_fail(check, "");
}

/// `contenders` concurrent reservations of one ref by different migrations: exactly one wins.
pub async fn concurrent_reservations_have_one_winner(
    store: &dyn CredentialWriter,
    namespace: &str,
    contenders: usize,
) {
    let check = "concurrent_reservations_have_one_winner";
    let r = Arc::new(reference(namespace, "contended-lease"));
    let ids: Vec<String> = (0..contenders).map(|i| format!("migration-{i}")).collect();
    let attempts = ids
        .iter()
        .map(|id| store.reserve(&r, id, Duration::from_secs(60)));
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<&String> = results
        .into_iter()
        .zip(&ids)
        .filter_map(|(result, id)| result.or_fail(check, "").then_some(id))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{check}: {} winners out of {contenders}",
        winners.len()
    );
    store.release(&r, winners[0]).await.or_fail(check, "");
}
