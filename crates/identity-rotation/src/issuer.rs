//! Where new secrets come from, and where old ones are revoked.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::{Credential, Error, Secret, async_trait};

/// Makes the new secret of a credential being rotated, and retires the old one when its grace
/// window is over: the upstream's API (a new API key, a new database password) or, for secrets
/// this deployment owns, [`RandomSecrets`].
///
/// ```
/// use identity_core::{Credential, Error, Secret, async_trait};
///
/// #[derive(Debug)]
/// struct Upstream;
///
/// #[async_trait]
/// impl identity_rotation::SecretIssuer for Upstream {
///     async fn issue(&self, current: &Credential) -> Result<Secret, Error> {
///         Ok(Secret::new(format!("key-after-{}", current.id)))
///     }
/// }
/// ```
#[async_trait]
pub trait SecretIssuer: Send + Sync + fmt::Debug + 'static {
    /// A new secret to replace `current`'s.
    async fn issue(&self, current: &Credential) -> Result<Secret, Error>;

    /// `retired`'s grace window is over: revoke its secret upstream, where that is possible.
    /// Nothing by default.
    async fn retire(&self, retired: &Credential) -> Result<(), Error> {
        let _ = retired;
        Ok(())
    }
}

/// Random secrets of 256 bits from the system's random source, base64url, after a prefix: for
/// secrets this deployment owns (shared keys, webhook secrets).
///
/// ```
/// let issuer = identity_rotation::RandomSecrets::new("whsec_");
/// assert!(format!("{issuer:?}").contains("whsec_"));
/// ```
#[derive(Debug, Clone)]
pub struct RandomSecrets {
    prefix: String,
}

impl RandomSecrets {
    /// Secrets starting with `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl SecretIssuer for RandomSecrets {
    async fn issue(&self, _current: &Credential) -> Result<Secret, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|_| Error::unavailable("rotation", "the system's random source failed"))?;
        let secret = format!("{}{}", self.prefix, URL_SAFE_NO_PAD.encode(bytes));
        bytes.fill(0);
        Ok(Secret::new(secret))
    }
}
