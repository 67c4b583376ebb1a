//! The cache key of an exchanged token: whose it is and what it was asked for.

use std::fmt;

use identity_core::Secret;
use sha2::{Digest, Sha256};

use crate::config::ExchangeConfig;

/// Identifies one exchanged token: the slot, a SHA-256 digest of the subject token (never the
/// token), and everything that changes the token (audiences, resources, scopes, requested token
/// type, a digest of the actor token). Two users never share a key, and neither do two requests
/// for different targets.
///
/// `Debug` shows the first eight hex digits only.
///
/// ```
/// use identity_core::Secret;
/// use identity_token_exchange::{CacheKey, ExchangeConfig, ClientAuth};
///
/// let config = ExchangeConfig::builder("crm", "agent").token_endpoint("https://a.example/t")
///     .client_auth(ClientAuth::None).build()?;
/// let alice = CacheKey::new(&config, &Secret::new("alice-token"), None);
/// let bob = CacheKey::new(&config, &Secret::new("bob-token"), None);
/// assert_ne!(alice, bob);
/// assert_eq!(alice, CacheKey::new(&config, &Secret::new("alice-token"), None));
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of exchanging `subject` (and `actor`) under `config`.
    pub fn new(config: &ExchangeConfig, subject: &Secret, actor: Option<&Secret>) -> Self {
        let mut hash = Sha256::new();
        // Every part is length-prefixed, so that no two different lists of parts hash alike.
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        part(b"agent-identity/token-exchange/v1");
        part(config.reference.as_str().as_bytes());
        part(&Sha256::digest(subject.expose_secret().as_bytes()));
        match actor {
            Some(actor) => part(&Sha256::digest(actor.expose_secret().as_bytes())),
            None => part(b""),
        }
        part(
            config
                .requested_token_type
                .as_ref()
                .map_or("", |t| t.as_str())
                .as_bytes(),
        );
        for list in [&config.audiences, &config.scopes] {
            part(&(list.len() as u64).to_be_bytes());
            for item in list {
                part(item.as_bytes());
            }
        }
        part(&(config.resources.len() as u64).to_be_bytes());
        for resource in &config.resources {
            part(resource.as_str().as_bytes());
        }
        Self(hash.finalize().into())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CacheKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientAuth;
    use crate::config::TokenType;

    fn config(reference: &str) -> crate::ExchangeConfigBuilder {
        ExchangeConfig::builder(reference, "agent")
            .token_endpoint("https://a.example/t")
            .client_auth(ClientAuth::None)
    }

    fn key(builder: crate::ExchangeConfigBuilder, subject: &str, actor: Option<&str>) -> CacheKey {
        let actor = actor.map(Secret::new);
        CacheKey::new(
            &builder.build().unwrap(),
            &Secret::new(subject),
            actor.as_ref(),
        )
    }

    #[test]
    fn everything_that_changes_the_token_changes_the_key() {
        let base = key(config("crm"), "alice", None);
        let variants = [
            key(config("crm"), "bob", None),
            key(config("erp"), "alice", None),
            key(config("crm"), "alice", Some("agent-1")),
            key(config("crm").audience("a"), "alice", None),
            key(config("crm").resource("https://r.example/"), "alice", None),
            key(config("crm").scopes(["read"]), "alice", None),
            key(
                config("crm").requested_token_type(TokenType::JWT),
                "alice",
                None,
            ),
        ];
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(*variant, base, "variant {i}");
        }
        assert_eq!(base, key(config("crm"), "alice", None));
    }

    #[test]
    fn part_boundaries_are_unambiguous() {
        assert_ne!(
            key(config("crm").audience("ab").audience("c"), "s", None),
            key(config("crm").audience("a").audience("bc"), "s", None)
        );
        assert_ne!(
            key(config("crm").audience("x"), "s", None),
            key(config("crm").scopes(["x"]), "s", None)
        );
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", key(config("crm"), "alice-secret-token", None));
        assert!(shown.starts_with("CacheKey(") && !shown.contains("alice"));
        assert_eq!(shown.chars().count(), 19, "{shown}");
    }
}
