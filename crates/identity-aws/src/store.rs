//! `AwsSecretsManagerStore`: one secret per credential, listed by tags.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use futures::StreamExt;
use identity_core::{
    ConfigError, Credential, CredentialKind, CredentialRef, CredentialStore, CredentialWriter,
    Error, OffsetDateTime, RequestContext, Secret, async_trait, decode_stored, encode_stored,
};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::instrument;

use crate::BACKEND;
use crate::failure::Failure;

/// The tag holding a credential's status (`active`, `pending`, ...).
pub const STATUS_TAG: &str = "agent-identity:status";
/// The tag holding a credential's kind (`fixed`, `user-delegated`); every secret this store
/// writes has it.
pub const KIND_TAG: &str = "agent-identity:kind";
/// The tag holding a credential's provider (empty when it has none).
pub const PROVIDER_TAG: &str = "agent-identity:provider";

/// The version stage a credential is read from.
const CURRENT: &str = "AWSCURRENT";
/// The stage the version before the current one keeps after a rotation.
const PREVIOUS: &str = "AWSPREVIOUS";
/// Secret names characters Secrets Manager accepts, besides ASCII letters and digits.
pub const ALLOWED_PUNCTUATION: &str = "/_+=.@-";
/// At most this many secrets in one `BatchGetSecretValue`.
const BATCH: usize = 20;

/// Credentials kept in AWS Secrets Manager.
///
/// Each credential is one secret named `<prefix><ref>`. Its `SecretString` is the credential's
/// camelCase JSON with the secret in the field [`SECRET_FIELD`](identity_core::SECRET_FIELD);
/// its status, kind and provider are also tags ([`STATUS_TAG`], [`KIND_TAG`],
/// [`PROVIDER_TAG`]), so that a listing filters on the server. The body stays the one source of
/// the metadata: listings read bodies (in batches of 20, `BatchGetSecretValue`) and filter them
/// again, so a tag that lags behind its body never makes a listing wrong.
///
/// - **Reads** take the `AWSCURRENT` version, from AWS each time; wrap the store in
///   `identity_cache::CachedStore` for a read cache.
/// - **Rotation** ([`AwsSecretsManagerStore::rotate`]) writes a new version: the new secret
///   becomes `AWSCURRENT`, the one before stays readable as `AWSPREVIOUS`
///   ([`AwsSecretsManagerStore::find_previous`]) until the next rotation.
/// - **Listings** walk every page of `ListSecrets`, filtered by name prefix and tag.
/// - **Deletes** schedule the deletion with a recovery window (30 days by default): a secret
///   scheduled for deletion reads as absent and can be restored; a later `put` restores it.
/// - **Leases** are not supported ([`Error::NotSupported`]): Secrets Manager has no conditional
///   write, so a lease that has expired cannot be taken over atomically.
/// - **Errors**: not found and scheduled deletion are "not found"; access denied (IAM or KMS) is
///   [`Error::PermissionDenied`]; bad or expired AWS credentials are
///   [`Error::Unauthenticated`]; unreachable, timed out, throttled and 5xx are
///   [`Error::Unavailable`], within the configured timeout (retries included).
///
/// The SDK client is made at the first call (the SDK's credential chain and region lookup are
/// asynchronous), so a store is built without reaching AWS.
///
/// ```
/// use identity_aws::AwsSecretsManagerStore;
///
/// let store = AwsSecretsManagerStore::builder()
///     .region("eu-west-1")
///     .prefix("agent-identity/")
///     .build()?;
/// assert!(format!("{store:?}").contains("eu-west-1"));
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Clone)]
pub struct AwsSecretsManagerStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    client: OnceCell<Client>,
}

#[derive(Clone)]
struct Settings {
    region: Option<String>,
    endpoint: Option<String>,
    prefix: String,
    timeout: Duration,
    attempts: u32,
    static_credentials: Option<(String, Secret)>,
    recovery_window_days: Option<i64>,
}

impl fmt::Debug for AwsSecretsManagerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.inner.settings;
        f.debug_struct("AwsSecretsManagerStore")
            .field("region", &settings.region)
            .field("endpoint", &settings.endpoint)
            .field("prefix", &settings.prefix)
            .field(
                "credentials",
                &if settings.static_credentials.is_some() {
                    "static"
                } else {
                    "default chain"
                },
            )
            .finish_non_exhaustive()
    }
}

/// Builds an [`AwsSecretsManagerStore`].
///
/// ```
/// let err = identity_aws::AwsSecretsManagerStore::builder()
///     .prefix("bad prefix")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("prefix"));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct AwsStoreBuilder {
    settings: Settings,
}

impl fmt::Debug for AwsStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsStoreBuilder")
            .field("region", &self.settings.region)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

/// The default name prefix of the secrets.
pub const DEFAULT_PREFIX: &str = "agent-identity/";
/// The default longest time of one operation, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
impl AwsSecretsManagerStore {
    /// A builder. Defaults: the SDK's region and credential chains (environment, profile,
    /// web identity, container and instance metadata), prefix [`DEFAULT_PREFIX`], timeout
    /// [`DEFAULT_TIMEOUT`] for an operation with its retries (3 attempts), deletes recoverable
    /// for 30 days.
    ///
    /// ```
    /// let builder = identity_aws::AwsSecretsManagerStore::builder();
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn builder() -> AwsStoreBuilder {
        AwsStoreBuilder {
            settings: Settings {
                region: None,
                endpoint: None,
                prefix: DEFAULT_PREFIX.into(),
                timeout: DEFAULT_TIMEOUT,
                attempts: 3,
                static_credentials: None,
                recovery_window_days: Some(30),
            },
        }
    }

    /// Rotates the credential in slot `reference` to `secret` at once, by hand. Rotation on a
    /// schedule or after a number of uses, once across replicas, with a grace window, is
    /// `identity_rotation::RotatingStore` over this store (whose writes keep `AWSPREVIOUS` the
    /// same way).
    ///
    /// A new version with the same
    /// metadata and `lastRotated` set to now becomes `AWSCURRENT`; the version before stays
    /// readable as `AWSPREVIOUS` ([`AwsSecretsManagerStore::find_previous`]) until the next
    /// rotation, so that a consumer still holding the old secret has a grace period. A read
    /// cache wrapped around the store learns of it after its TTL, or at once after its
    /// `invalidate`.
    ///
    /// ```no_run
    /// # async fn example(store: identity_aws::AwsSecretsManagerStore) -> Result<(), identity_core::Error> {
    /// let slot = identity_core::CredentialRef::new("openai-prod")?;
    /// store.rotate(&slot, identity_core::Secret::new("sk-new")).await?;
    /// # Ok(()) }
    /// ```
    #[instrument(skip_all, fields(reference = %reference))]
    pub async fn rotate(&self, reference: &CredentialRef, secret: Secret) -> Result<(), Error> {
        let inner = &self.inner;
        let name = inner.name(reference)?;
        let what = format!("rotation of `{name}`");
        let current = inner
            .read(reference, &name, CURRENT)
            .await
            .map_err(|f| f.into_error(&what))?
            .ok_or_else(|| Error::credential_not_found(reference.as_str()))?;
        let mut rotated = current.with_secret(secret);
        rotated.last_rotated = Some(OffsetDateTime::now_utc());
        let body = Value::Object(encode_stored(&rotated)).to_string();
        let client = inner.client().await?;
        client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(body)
            .send()
            .await
            .map(drop)
            .map_err(|e| Failure::from_sdk(&e).into_error(&what))
    }

    /// The credential in slot `reference` as it was before the last rotation (`AWSPREVIOUS`),
    /// or `None` when it was never rotated.
    ///
    /// ```no_run
    /// # async fn example(store: identity_aws::AwsSecretsManagerStore) -> Result<(), identity_core::Error> {
    /// let slot = identity_core::CredentialRef::new("openai-prod")?;
    /// let previous = store.find_previous(&slot).await?;
    /// # Ok(()) }
    /// ```
    #[instrument(skip_all, fields(reference = %reference))]
    pub async fn find_previous(
        &self,
        reference: &CredentialRef,
    ) -> Result<Option<Credential>, Error> {
        let name = self.inner.name(reference)?;
        self.inner
            .read(reference, &name, PREVIOUS)
            .await
            .map_err(|f| f.into_error(&format!("read of `{name}` ({PREVIOUS})")))
    }
}

impl AwsStoreBuilder {
    /// The region (`eu-west-1`); without it, the SDK's region chain (`AWS_REGION`, profile,
    /// instance metadata).
    ///
    /// ```
    /// let store = identity_aws::AwsSecretsManagerStore::builder().region("eu-west-1").build()?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.settings.region = Some(region.into());
        self
    }

    /// Another endpoint than AWS's (a VPC endpoint, a local emulator).
    ///
    /// ```
    /// let store = identity_aws::AwsSecretsManagerStore::builder()
    ///     .endpoint("http://127.0.0.1:5000").build()?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.settings.endpoint = Some(endpoint.into());
        self
    }

    /// The name prefix of the secrets ([`DEFAULT_PREFIX`]); the secret of ref `r` is named
    /// `<prefix>r`. Empty for none.
    ///
    /// ```
    /// let store = identity_aws::AwsSecretsManagerStore::builder().prefix("team-a/").build()?;
    /// assert!(format!("{store:?}").contains("team-a/"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// The longest one operation may take, its retries included ([`DEFAULT_TIMEOUT`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let err = identity_aws::AwsSecretsManagerStore::builder().timeout(Duration::ZERO).build().unwrap_err();
    /// assert!(err.to_string().contains("timeout"));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// How many times one operation is tried at most (3), for throttling and server errors.
    ///
    /// ```
    /// let err = identity_aws::AwsSecretsManagerStore::builder().attempts(0).build().unwrap_err();
    /// assert!(err.to_string().contains("attempts"));
    /// ```
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.settings.attempts = attempts;
        self
    }

    /// Fixed credentials instead of the SDK's chain: for tests and local emulators only. In
    /// production, leave the chain to find the role's credentials.
    ///
    /// ```
    /// let store = identity_aws::AwsSecretsManagerStore::builder()
    ///     .static_credentials("testing", identity_core::Secret::new("testing"))
    ///     .build()?;
    /// assert!(format!("{store:?}").contains("static"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn static_credentials(mut self, access_key_id: impl Into<String>, secret: Secret) -> Self {
        self.settings.static_credentials = Some((access_key_id.into(), secret));
        self
    }

    /// How many days a deleted secret stays recoverable (7 to 30; 30 by default). `None`
    /// deletes at once, without recovery.
    ///
    /// ```
    /// let err = identity_aws::AwsSecretsManagerStore::builder().recovery_window_days(Some(3)).build().unwrap_err();
    /// assert!(err.to_string().contains("recovery_window_days"));
    /// ```
    pub fn recovery_window_days(mut self, days: Option<i64>) -> Self {
        self.settings.recovery_window_days = days;
        self
    }

    /// Checks the settings and builds the store, without contacting AWS.
    ///
    /// ```
    /// let err = identity_aws::AwsSecretsManagerStore::builder().endpoint("not a url").build().unwrap_err();
    /// assert!(err.to_string().contains("endpoint"));
    /// ```
    pub fn build(self) -> Result<AwsSecretsManagerStore, Error> {
        let located = |field: &str, problem: &str| -> Error {
            ConfigError::new("aws store", Some(field), problem).into()
        };
        let settings = &self.settings;
        if !settings.prefix.is_empty() {
            check_name(&settings.prefix, "aws prefix")?;
        }
        if let Some(endpoint) = &settings.endpoint {
            let scheme = endpoint.split_once("://").map(|(scheme, _)| scheme);
            if !matches!(scheme, Some("http" | "https")) || endpoint.contains(char::is_whitespace) {
                return Err(located("endpoint", "must be an http or https URL"));
            }
        }
        if let Some(region) = &settings.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            return Err(located("region", "is not a region name (like `eu-west-1`)"));
        }
        if settings.timeout.is_zero() {
            return Err(located("timeout", "must be more than zero"));
        }
        if settings.attempts == 0 {
            return Err(located("attempts", "must be at least 1"));
        }
        if settings
            .recovery_window_days
            .is_some_and(|days| !(7..=30).contains(&days))
        {
            return Err(located(
                "recovery_window_days",
                "must be between 7 and 30 (Secrets Manager's bounds), or none",
            ));
        }
        Ok(AwsSecretsManagerStore {
            inner: Arc::new(Inner {
                settings: self.settings,
                client: OnceCell::new(),
            }),
        })
    }
}

/// Checks that `name` can be (part of) a secret name; `what` names it in the error.
fn check_name(name: &str, what: &'static str) -> Result<(), Error> {
    let refuse = |problem: String| Error::InvalidArgument {
        argument: what,
        problem,
    };
    if name.len() > 512 {
        return Err(refuse("is longer than 512 bytes".into()));
    }
    if let Some((at, c)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || ALLOWED_PUNCTUATION.contains(c)))
    {
        let shown = if c.is_control() {
            c.escape_debug().to_string()
        } else {
            c.to_string()
        };
        return Err(refuse(format!(
            "has `{shown}` at byte {at}; Secrets Manager names may use ASCII letters, digits and \
             `{ALLOWED_PUNCTUATION}`"
        )));
    }
    Ok(())
}

impl Inner {
    /// The secret name of slot `reference`, once checked.
    fn name(&self, reference: &CredentialRef) -> Result<String, Error> {
        check_name(reference.as_str(), "credential ref")?;
        let name = format!("{}{}", self.settings.prefix, reference.as_str());
        if name.len() > 512 {
            return Err(Error::InvalidArgument {
                argument: "credential ref",
                problem: "with the prefix, is longer than Secrets Manager's 512 bytes".into(),
            });
        }
        Ok(name)
    }

    /// The SDK client, made at the first call.
    async fn client(&self) -> Result<&Client, Error> {
        self.client
            .get_or_try_init(|| async {
                let settings = &self.settings;
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(settings.timeout)
                            .connect_timeout(settings.timeout)
                            .build(),
                    )
                    .retry_config(RetryConfig::standard().with_max_attempts(settings.attempts));
                if let Some(region) = &settings.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(endpoint) = &settings.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                if let Some((id, secret)) = &settings.static_credentials {
                    loader = loader.credentials_provider(Credentials::new(
                        id,
                        secret.expose_secret(),
                        None,
                        None,
                        "agent-identity-static",
                    ));
                }
                let config = loader.load().await;
                if config.region().is_none() {
                    return Err(Error::from(ConfigError::new(
                        "aws store",
                        Some("region"),
                        "is not set, and the SDK found none (set `region` or AWS_REGION)",
                    )));
                }
                Ok(Client::new(&config))
            })
            .await
    }

    /// The credential of slot `reference` at version stage `stage`, read from AWS.
    async fn read(
        &self,
        reference: &CredentialRef,
        name: &str,
        stage: &str,
    ) -> Result<Option<Credential>, Failure> {
        let client = self.client().await.map_err(unauthenticated_from)?;
        let answer = client
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send()
            .await;
        match answer {
            Ok(output) => {
                let body = output
                    .secret_string()
                    .ok_or_else(|| Failure::Malformed("the secret has no SecretString".into()))?;
                decode(reference, body).map(Some)
            }
            Err(error) => match Failure::from_sdk(&error) {
                Failure::NotFound | Failure::ScheduledForDeletion => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The names of every secret under the prefix whose tags match `filters`, all pages.
    async fn names(&self, tag: Option<(&str, &str)>) -> Result<Vec<String>, Error> {
        let what = format!("listing of `{}`", self.settings.prefix);
        let client = self.client().await?;
        let mut filters = vec![
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values(tag.map_or(KIND_TAG, |(key, _)| key))
                .build(),
        ];
        if let Some((_, value)) = tag {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::TagValue)
                    .values(value)
                    .build(),
            );
        }
        if !self.settings.prefix.is_empty() {
            filters.push(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(&self.settings.prefix)
                    .build(),
            );
        }
        let mut pages = client
            .list_secrets()
            .set_filters(Some(filters))
            .max_results(100)
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Failure::from_sdk(&e).into_error(&what))?;
            names.extend(
                page.secret_list()
                    .iter()
                    .filter_map(|entry| entry.name())
                    // The name filter is a prefix match that ignores case: keep exact ones.
                    .filter(|name| name.starts_with(&self.settings.prefix))
                    .map(str::to_owned),
            );
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every credential under the prefix whose tag `key` is `value` and that `keep` accepts,
    /// without secrets, bodies read in batches.
    async fn listing(
        &self,
        key: &str,
        value: &str,
        keep: impl Fn(&Credential) -> bool,
    ) -> Result<Vec<Credential>, Error> {
        let names = self.names(Some((key, value))).await?;
        let client = self.client().await?;
        let batches = futures::stream::iter(names.chunks(BATCH).map(<[String]>::to_vec))
            .map(|batch| async move {
                let what = format!("batch read of {} secrets", batch.len());
                let output = client
                    .batch_get_secret_value()
                    .set_secret_id_list(Some(batch))
                    .send()
                    .await
                    .map_err(|e| Failure::from_sdk(&e).into_error(&what))?;
                if let Some(error) = output.errors().iter().find(|e| {
                    // Deleted between the listing and the read: absent, not an error.
                    !matches!(
                        e.error_code(),
                        Some("ResourceNotFoundException" | "InvalidRequestException")
                    )
                }) {
                    return Err(Failure::Rejected {
                        code: error.error_code().unwrap_or("unknown").to_owned(),
                        message: error.message().unwrap_or_default().to_owned(),
                    }
                    .into_error(&format!("read of `{}`", error.secret_id().unwrap_or("?"))));
                }
                let mut credentials = Vec::new();
                for entry in output.secret_values() {
                    let name = entry.name().unwrap_or_default();
                    let what = format!("read of `{name}`");
                    let reference = name
                        .strip_prefix(&self.settings.prefix)
                        .and_then(|r| CredentialRef::new(r).ok())
                        .ok_or_else(|| {
                            Failure::Malformed("the name is not a credential ref".into())
                                .into_error(&what)
                        })?;
                    let body = entry.secret_string().ok_or_else(|| {
                        Failure::Malformed("the secret has no SecretString".into())
                            .into_error(&what)
                    })?;
                    credentials.push(decode(&reference, body).map_err(|f| f.into_error(&what))?);
                }
                Ok::<_, Error>(credentials)
            })
            .buffered(4);
        let mut listed = Vec::new();
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            listed.extend(
                batch?
                    .into_iter()
                    .filter(|c| keep(c))
                    .map(Credential::without_secret),
            );
        }
        listed.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(listed)
    }
}

fn decode(reference: &CredentialRef, body: &str) -> Result<Credential, Failure> {
    let value: Value = serde_json::from_str(body)
        .map_err(|_| Failure::Malformed("the SecretString is not JSON".into()))?;
    decode_stored(reference, value).map_err(|err| Failure::Malformed(err.to_string()))
}

/// A client that could not be made is the store's own configuration problem.
fn unauthenticated_from(error: Error) -> Failure {
    Failure::Unauthenticated(error.to_string())
}

fn tags(credential: &Credential) -> Vec<Tag> {
    [
        (STATUS_TAG, credential.status.as_str()),
        (KIND_TAG, credential.kind.as_str()),
        (
            PROVIDER_TAG,
            credential.provider.as_deref().unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| Tag::builder().key(key).value(value).build())
    .collect()
}

#[async_trait]
impl CredentialStore for AwsSecretsManagerStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Lists one page of this store's secrets: it proves that AWS answers and that the
    /// credentials and the policy allow a listing.
    #[instrument(skip_all)]
    async fn health(&self) -> Result<(), Error> {
        let client = self.inner.client().await?;
        client
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| Failure::from_sdk(&e).into_error("listing"))
    }

    #[instrument(skip_all, fields(reference = %reference))]
    async fn find_by_ref(
        &self,
        reference: &CredentialRef,
        _context: &RequestContext,
    ) -> Result<Option<Credential>, Error> {
        let inner = &self.inner;
        let name = inner.name(reference)?;
        let found = inner.read(reference, &name, CURRENT).await;
        found.map_err(|f| f.into_error(&format!("read of `{name}`")))
    }

    #[instrument(skip_all)]
    async fn list_active(&self) -> Result<Vec<Credential>, Error> {
        self.inner
            .listing(STATUS_TAG, "active", |c| c.status.is_usable())
            .await
    }

    #[instrument(skip_all)]
    async fn list_by_kind(&self, kind: CredentialKind) -> Result<Vec<Credential>, Error> {
        self.inner
            .listing(KIND_TAG, kind.as_str(), |c| c.kind == kind)
            .await
    }

    /// The number of secrets under the prefix that carry [`KIND_TAG`]: `ListSecrets` pages only,
    /// no body read. Secrets scheduled for deletion are not counted.
    #[instrument(skip_all)]
    async fn count(&self) -> Result<usize, Error> {
        self.inner.names(None).await.map(|names| names.len())
    }
}

#[async_trait]
impl CredentialWriter for AwsSecretsManagerStore {
    /// Creates the secret with its tags, or writes a new version and then sets the tags. A
    /// secret scheduled for deletion is restored first.
    #[instrument(skip_all, fields(reference = %credential.reference))]
    async fn put(&self, credential: Credential) -> Result<(), Error> {
        let inner = &self.inner;
        let name = inner.name(&credential.reference)?;
        let what = format!("write of `{name}`");
        let client = inner.client().await?;
        let body = Value::Object(encode_stored(&credential)).to_string();
        let tags = tags(&credential);
        let result = async {
            let described = client.describe_secret().secret_id(&name).send().await;
            let exists = match described.map_err(|e| Failure::from_sdk(&e)) {
                Ok(secret) => {
                    // Scheduled for deletion: restore it, or the new version would be unreadable.
                    if secret.deleted_date().is_some() {
                        client
                            .restore_secret()
                            .secret_id(&name)
                            .send()
                            .await
                            .map_err(|e| Failure::from_sdk(&e))?;
                    }
                    true
                }
                Err(Failure::NotFound) => false,
                Err(other) => return Err(other),
            };
            if !exists {
                let created = client
                    .create_secret()
                    .name(&name)
                    .secret_string(&body)
                    .set_tags(Some(tags.clone()))
                    .send()
                    .await;
                match created.map_err(|e| Failure::from_sdk(&e)) {
                    Ok(_) => return Ok(()),
                    // Created by another writer meanwhile: write a version on top of it.
                    Err(Failure::Exists) => {}
                    Err(other) => return Err(other),
                }
            }
            client
                .put_secret_value()
                .secret_id(&name)
                .secret_string(&body)
                .send()
                .await
                .map_err(|e| Failure::from_sdk(&e))?;
            client
                .tag_resource()
                .secret_id(&name)
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .map(drop)
                .map_err(|e| Failure::from_sdk(&e))
        }
        .await;
        result.map_err(|f| f.into_error(&what))
    }

    /// Schedules the deletion (recoverable for the configured window), or deletes at once when
    /// the window is `None`. A secret already scheduled for deletion counts as absent.
    #[instrument(skip_all, fields(reference = %reference))]
    async fn delete(&self, reference: &CredentialRef) -> Result<bool, Error> {
        let inner = &self.inner;
        let name = inner.name(reference)?;
        let client = inner.client().await?;
        let mut request = client.delete_secret().secret_id(&name);
        request = match inner.settings.recovery_window_days {
            Some(days) => request.recovery_window_in_days(days),
            None => request.force_delete_without_recovery(true),
        };
        match request.send().await.map_err(|e| Failure::from_sdk(&e)) {
            Ok(_) => Ok(true),
            Err(Failure::NotFound | Failure::ScheduledForDeletion) => Ok(false),
            Err(other) => Err(other.into_error(&format!("delete of `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_use_only_what_secrets_manager_accepts() {
        for ok in ["openai-prod", "team/a_b+c=d.e@f-g"] {
            assert!(check_name(ok, "credential ref").is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("vault:openai", "`:` at byte 5"),
            ("a b", "` ` at byte 1"),
            ("a?b", "`?`"),
            ("café", "`é`"),
            ("a%2e", "`%`"),
        ] {
            let err = check_name(bad, "credential ref").unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(check_name(&"a".repeat(513), "credential ref").is_err());
    }
}
