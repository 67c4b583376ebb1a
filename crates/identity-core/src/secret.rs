//! Secret material, kept behind [`secrecy`] so that it only leaves by an explicit call.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

/// The secret material of a credential: an API key, an access token, a password.
///
/// `Secret` has no `Display`, no `Serialize` and no `Deref`; its `Debug` prints `Secret([redacted])`.
/// The only way to the value is [`Secret::expose_secret`], called at the point where the secret is
/// put on the wire. The value is zeroed when the last clone is dropped (it is held in a
/// [`secrecy::SecretString`] behind an `Arc`, so cloning a `Secret` copies no secret bytes).
///
/// ```
/// use identity_core::Secret;
///
/// let secret = Secret::new("sk-live-123");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// assert_eq!(secret.expose_secret(), "sk-live-123");
/// ```
#[derive(Clone)]
pub struct Secret(Arc<SecretString>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::new(SecretString::from(value.into())))
    }

    /// Returns the secret value. Call it only where the value is needed, never to log it.
    ///
    /// ```
    /// # use identity_core::Secret;
    /// let header = format!("Bearer {}", Secret::new("tok").expose_secret());
    /// # assert_eq!(header, "Bearer tok");
    /// ```
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}
