//! Keys by id, one key per purpose, and boxes sealed with AES-256-GCM.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Nonce, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use identity_core::{ConfigError, Error};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// One key: 32 bytes, wiped from memory when dropped.
type Key = Zeroizing<[u8; 32]>;

/// Keys that seal stored secrets, by key id.
///
/// New boxes are sealed with the current key; boxes sealed with an older key still open while
/// that key is in the ring. A key rotates by adding a new current key and keeping the old one
/// until every box was sealed again.
///
/// One configured key serves every use: [`Keyring::for_purpose`] derives a ring of its own for
/// each purpose (HKDF-SHA256, the purpose as `info`), so that a box of one purpose (a flow
/// cookie) never opens as a box of another (a stored token), and one purpose's key tells nothing
/// of another's.
///
/// `Debug` shows key ids only.
///
/// ```
/// let ring = identity_seal::Keyring::new("k2", [2u8; 32]).with_old_key("k1", [1u8; 32]);
/// assert_eq!(ring.current_id(), "k2");
/// assert!(!format!("{ring:?}").contains("[2"));
/// ```
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: BTreeMap<String, Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Bytes sealed with AES-256-GCM by a [`Keyring`]: the key id, the nonce and the ciphertext
/// (base64), as stored.
///
/// ```
/// let ring = identity_seal::Keyring::new("k1", [3u8; 32]);
/// let sealed = ring.seal(b"", b"x")?;
/// assert_eq!(sealed.key_id, "k1");
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBox {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The nonce, base64.
    pub nonce: String,
    /// The ciphertext with its tag, base64.
    pub ciphertext: String,
}

fn keyring_error(problem: impl Into<String>) -> Error {
    ConfigError::new("keyring", None, problem).into()
}

impl Keyring {
    /// A ring whose current key is `key`, named `id`.
    ///
    /// ```
    /// let ring = identity_seal::Keyring::new("2026-11", [7u8; 32]);
    /// ```
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Self {
        let current = id.into();
        Self {
            keys: BTreeMap::from([(current.clone(), Zeroizing::new(key))]),
            current,
        }
    }

    /// A ring whose current key is the base64 text `key` (32 bytes once decoded), named `id`:
    /// what a configuration gives (from an environment variable).
    ///
    /// ```
    /// let ring = identity_seal::Keyring::from_base64("k1", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")?;
    /// assert!(identity_seal::Keyring::from_base64("k1", "short").is_err());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn from_base64(id: impl Into<String>, key: &str) -> Result<Self, Error> {
        Ok(Self::new(id, decode_key(key)?))
    }

    /// The same ring with an older key that still opens boxes sealed with it.
    ///
    /// ```
    /// let ring = identity_seal::Keyring::new("k2", [2u8; 32]).with_old_key("k1", [1u8; 32]);
    /// ```
    pub fn with_old_key(mut self, id: impl Into<String>, key: [u8; 32]) -> Self {
        self.keys
            .entry(id.into())
            .or_insert_with(|| Zeroizing::new(key));
        self
    }

    /// The same ring with every key of `other` added as an older key.
    ///
    /// ```
    /// let old = identity_seal::Keyring::new("k1", [1u8; 32]);
    /// let ring = identity_seal::Keyring::new("k2", [2u8; 32]).with_keys_of(&old);
    /// assert_eq!(ring.current_id(), "k2");
    /// ```
    pub fn with_keys_of(mut self, other: &Keyring) -> Self {
        for (id, key) in &other.keys {
            self.keys.entry(id.clone()).or_insert_with(|| key.clone());
        }
        self
    }

    /// The ring of one purpose (`"oauth-connections"`, `"dcr-clients"`, `"flow-cookie"`): every
    /// key derived from this ring's key of the same id with HKDF-SHA256, the purpose as `info`.
    /// Key ids stay the same, so rotation works as in this ring.
    ///
    /// ```
    /// let ring = identity_seal::Keyring::new("k1", [3u8; 32]);
    /// let tokens = ring.for_purpose("tokens");
    /// let sealed = tokens.seal(b"alice", b"secret")?;
    /// assert!(ring.for_purpose("cookies").open(&sealed, b"alice").is_err());
    /// assert_eq!(ring.for_purpose("tokens").open(&sealed, b"alice")?, b"secret");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn for_purpose(&self, purpose: &str) -> Keyring {
        let keys = self
            .keys
            .iter()
            .map(|(id, key)| {
                let mut derived = Zeroizing::new([0u8; 32]);
                // Expanding to 32 bytes cannot fail (the limit is 255 hash lengths).
                let _ = Hkdf::<Sha256>::new(Some(b"agent-identity seal v1"), key.as_slice())
                    .expand(purpose.as_bytes(), derived.as_mut_slice());
                (id.clone(), derived)
            })
            .collect();
        Keyring {
            current: self.current.clone(),
            keys,
        }
    }

    /// The id of the key new boxes are sealed with.
    ///
    /// ```
    /// assert_eq!(identity_seal::Keyring::new("k1", [0u8; 32]).current_id(), "k1");
    /// ```
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Seals `plaintext` with the current key and a fresh random nonce, bound to `associated`
    /// (data that must be the same to open it: what the sealed bytes belong to).
    ///
    /// ```
    /// let ring = identity_seal::Keyring::new("k1", [3u8; 32]);
    /// let sealed = ring.seal(b"alice/github", b"token")?;
    /// assert_eq!(ring.open(&sealed, b"alice/github")?, b"token");
    /// assert!(ring.open(&sealed, b"bob/github").is_err());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn seal(&self, associated: &[u8], plaintext: &[u8]) -> Result<SealedBox, Error> {
        let cipher = self
            .cipher(&self.current)
            .ok_or_else(|| keyring_error("sealing failed"))?;
        let nonce = Nonce::<Aes256Gcm>::generate();
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: associated,
                },
            )
            .map_err(|_| keyring_error("sealing failed"))?;
        Ok(SealedBox {
            key_id: self.current.clone(),
            nonce: STANDARD.encode(nonce.as_slice()),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Opens `sealed`, which must have been sealed with a key of this ring and the same
    /// `associated` data. The error says which: an unknown key id, or a box that does not open
    /// (a wrong key, another purpose, other associated data, or tampered).
    ///
    /// ```
    /// let ring = identity_seal::Keyring::new("k1", [3u8; 32]);
    /// let sealed = ring.seal(b"a", b"secret")?;
    /// let err = identity_seal::Keyring::new("k2", [4u8; 32]).open(&sealed, b"a").unwrap_err();
    /// assert!(err.to_string().contains("`k1`"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn open(&self, sealed: &SealedBox, associated: &[u8]) -> Result<Vec<u8>, Error> {
        let cipher = self.cipher(&sealed.key_id).ok_or_else(|| {
            keyring_error(format!(
                "sealed with key `{}`, which the keyring lacks",
                sealed.key_id
            ))
        })?;
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|bytes| Nonce::<Aes256Gcm>::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| keyring_error("a bad nonce"))?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| keyring_error("bad ciphertext"))?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| keyring_error("does not open: a wrong key, or tampered"))
    }

    /// True when `sealed` was sealed with the current key.
    ///
    /// ```
    /// let ring = identity_seal::Keyring::new("k1", [3u8; 32]);
    /// assert!(ring.is_current(&ring.seal(b"", b"x")?));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn is_current(&self, sealed: &SealedBox) -> bool {
        sealed.key_id == self.current
    }

    fn cipher(&self, id: &str) -> Option<Aes256Gcm> {
        self.keys
            .get(id)
            .and_then(|key| Aes256Gcm::new_from_slice(key.as_slice()).ok())
    }
}

fn decode_key(text: &str) -> Result<[u8; 32], Error> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .ok_or_else(|| {
            ConfigError::new(
                "keyring key",
                None,
                "is not 32 bytes of base64 (generate one with `openssl rand -base64 32`)",
            )
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_derive_distinct_keys_that_keep_their_ids_and_rotation() {
        let old = Keyring::new("k1", [1u8; 32]);
        let sealed_old = old.for_purpose("p").seal(b"ad", b"v1").unwrap();
        let ring = Keyring::new("k2", [2u8; 32]).with_keys_of(&old);
        let purpose = ring.for_purpose("p");
        assert_eq!(purpose.current_id(), "k2");
        assert_eq!(purpose.open(&sealed_old, b"ad").unwrap(), b"v1");
        assert!(!purpose.is_current(&sealed_old));
        // The purpose's key is not the raw key.
        assert!(ring.open(&purpose.seal(b"", b"x").unwrap(), b"").is_err());
    }

    #[test]
    fn tampered_boxes_do_not_open() {
        let ring = Keyring::new("k1", [9u8; 32]);
        let mut sealed = ring.seal(b"ad", b"plaintext").unwrap();
        let mut bytes = STANDARD.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        sealed.ciphertext = STANDARD.encode(bytes);
        let err = ring.open(&sealed, b"ad").unwrap_err().to_string();
        assert!(err.contains("does not open"), "{err}");
        sealed.nonce = "!!".into();
        assert!(ring.open(&sealed, b"ad").is_err());
    }

    proptest::proptest! {
        #[test]
        fn what_is_sealed_opens_with_the_same_data_only(
            plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            associated in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            other in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let ring = Keyring::new("k", [5u8; 32]).for_purpose("prop");
            let sealed = ring.seal(&associated, &plaintext).unwrap();
            proptest::prop_assert_eq!(ring.open(&sealed, &associated).unwrap(), plaintext);
            if other != associated {
                proptest::prop_assert!(ring.open(&sealed, &other).is_err());
            }
        }
    }
}
