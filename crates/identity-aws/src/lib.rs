//! A [`CredentialStore`](identity_core::CredentialStore) over AWS Secrets Manager:
//! [`AwsSecretsManagerStore`], through the official SDK (`aws-sdk-secretsmanager`).
//!
//! It keeps fixed credentials that teams on AWS already manage there: one secret per credential,
//! the credential's JSON (with its secret) in `SecretString`, its status, kind and provider also
//! in tags so that listings filter on the server. Reads reach AWS each time (`identity_cache::CachedStore` wraps the
//! store in a read cache); rotation keeps the previous
//! version readable as `AWSPREVIOUS`.
//!
//! The crate has no features. It does **not** rotate with Lambda functions, create KMS keys or
//! IAM policies, or take migration leases (Secrets Manager has no conditional write). The SDK is
//! built with rustls and ring (no aws-lc). Credentials come from the SDK's default chain
//! (environment, profile, web identity, container, instance metadata); fixed credentials are for
//! tests and emulators. The IAM policy a store needs:
//!
//! ```json
//! { "Effect": "Allow",
//!   "Action": ["secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue",
//!              "secretsmanager:ListSecrets", "secretsmanager:CreateSecret",
//!              "secretsmanager:PutSecretValue", "secretsmanager:TagResource",
//!              "secretsmanager:DeleteSecret", "secretsmanager:RestoreSecret"],
//!   "Resource": "*" }
//! ```
//!
//! (a read-only deployment needs only the first three; `Resource` can be narrowed to the
//! prefix's ARNs, except for `ListSecrets` and `BatchGetSecretValue`, which take `*`).
//!
//! ```
//! use identity_core::{CredentialRef, CredentialStore, Error};
//! use identity_aws::AwsSecretsManagerStore;
//!
//! let store = AwsSecretsManagerStore::builder().region("eu-west-1").build()?;
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(async {
//! // Leases are refused with a typed error, before any request.
//! let slot = CredentialRef::new("openai-prod")?;
//! let err = store.reserve(&slot, "m1", std::time::Duration::from_secs(60)).await.unwrap_err();
//! assert!(matches!(err, Error::NotSupported { backend: "aws", .. }));
//! # Ok::<(), Error>(()) })?;
//! # Ok::<(), Error>(())
//! ```

mod config;
mod failure;
mod store;

pub use config::AwsConfig;
pub use store::{
    ALLOWED_PUNCTUATION, AwsSecretsManagerStore, AwsStoreBuilder, DEFAULT_PREFIX, DEFAULT_TIMEOUT,
    KIND_TAG, PROVIDER_TAG, STATUS_TAG,
};

/// The backend name in errors and audit events.
const BACKEND: &str = "aws";
