//! Sealing for agent-identity: what keeps stored secrets secret and stored facts unforged.
//!
//! - [`Keyring`]: keys by id, so that a key rotates without losing what the old one sealed, and
//!   a key per purpose ([`Keyring::for_purpose`], HKDF-SHA256) from one configured key.
//! - [`SealedBox`]: bytes sealed with AES-256-GCM (a fresh random nonce each time), bound to
//!   associated data that must be the same to open them: a box moved to another record does not
//!   open. Whatever decides a stored token's life (its expiry, its version) belongs inside the
//!   box or its associated data, where a writer without the key cannot change it.
//! - [`PrivateFile`]: a file of secrets written atomically, owner-only, under a random temporary
//!   name created exclusively, with an advisory lock so one process writes it;
//!   [`read_versioned`] reads its versioned JSON document.
//!
//! What this crate does not do: key storage or generation (keys come from the configuration,
//! `openssl rand -base64 32`), and sharing a file between processes (a shared store does that).
//!
//! The crate has no features.
//!
//! ```
//! use identity_seal::Keyring;
//!
//! let ring = Keyring::from_base64("2026-11", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")?
//!     .for_purpose("oauth-connections");
//! let sealed = ring.seal(b"alice/github", br#"{"access_token":"gho_..."}"#)?;
//! assert!(ring.open(&sealed, b"bob/github").is_err());
//! # Ok::<(), identity_core::Error>(())
//! ```

mod file;
mod keyring;

pub use file::{PrivateFile, read_versioned};
pub use keyring::{Keyring, SealedBox};
