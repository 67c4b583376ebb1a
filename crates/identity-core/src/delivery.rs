//! Whether a credential's secret may leave the broker.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a credential's secret may go once it is resolved.
///
/// The default keeps the secret inside the broker: it is injected into a call the broker makes
/// (the proxy) and never handed to the caller. `Reveal` lets an authenticated caller holding the
/// permission to receive secrets take it (for a tool that reads an environment variable). A
/// credential or a rule may say `reveal`; either is enough, and the caller's permission is still
/// needed.
///
/// ```
/// use identity_core::Delivery;
///
/// assert_eq!(Delivery::default(), Delivery::ProxyOnly);
/// let reveal: Delivery = serde_json::from_str(r#""reveal""#).unwrap();
/// assert_eq!(reveal, Delivery::Reveal);
/// assert_eq!(Delivery::ProxyOnly.or(Delivery::Reveal), Delivery::Reveal);
/// assert_eq!(Delivery::ProxyOnly.to_string(), "proxy-only");
/// assert!(serde_json::from_str::<Delivery>(r#""everyone""#).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// The secret is only ever injected by the broker.
    #[default]
    ProxyOnly,
    /// The secret may be delivered to a caller with the permission to receive secrets.
    Reveal,
}

impl Delivery {
    /// The wire spelling (`proxy-only`, `reveal`).
    ///
    /// ```
    /// assert_eq!(identity_core::Delivery::Reveal.as_str(), "reveal");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ProxyOnly => "proxy-only",
            Self::Reveal => "reveal",
        }
    }

    /// `Reveal` when either side says so.
    ///
    /// ```
    /// use identity_core::Delivery;
    /// assert_eq!(Delivery::Reveal.or(Delivery::ProxyOnly), Delivery::Reveal);
    /// assert_eq!(Delivery::ProxyOnly.or(Delivery::ProxyOnly), Delivery::ProxyOnly);
    /// ```
    #[must_use]
    pub const fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::ProxyOnly, Self::ProxyOnly) => Self::ProxyOnly,
            _ => Self::Reveal,
        }
    }

    /// True for the default, [`Delivery::ProxyOnly`] (for `skip_serializing_if`).
    ///
    /// ```
    /// assert!(identity_core::Delivery::ProxyOnly.is_proxy_only());
    /// ```
    pub const fn is_proxy_only(&self) -> bool {
        matches!(self, Self::ProxyOnly)
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
