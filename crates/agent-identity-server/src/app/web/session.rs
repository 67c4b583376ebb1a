//! The pages' cookies: a signed-in session, and a sign-in on its way through the identity
//! provider, each sealed with AES-256-GCM under a key of its own.

use agent_identity::identity_seal::{Keyring, SealedBox};
use agent_identity::{OffsetDateTime, Secret};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "agent_identity_session";
/// The sign-in cookie's name.
pub(crate) const SIGNIN_COOKIE: &str = "agent_identity_signin";

/// A person signed in through the identity provider. `Debug` leaves the form token out.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Who, by the configured claim.
    pub(crate) user: String,
    /// The token each of the session's forms carries back.
    pub(crate) csrf: String,
    /// Until when (seconds since the epoch).
    pub(crate) expires: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A sign-in between the redirect to the identity provider and its callback.
#[derive(Serialize, Deserialize)]
pub(crate) struct SignIn {
    pub(crate) issuer: String,
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) redirect_uri: String,
    pub(crate) iss_required: bool,
    pub(crate) expires: i64,
}

/// Seals and opens the pages' cookies.
#[derive(Clone)]
pub(crate) struct Cookies {
    session: Keyring,
    signin: Keyring,
    secure: bool,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cookies")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl Cookies {
    /// Cookies sealed with keys derived from `keys`; `Secure` when the pages are served over
    /// HTTPS.
    pub(crate) fn new(keys: &Keyring, secure: bool) -> Self {
        Self {
            session: keys.for_purpose("web-session"),
            signin: keys.for_purpose("web-signin"),
            secure,
        }
    }

    fn seal<T: Serialize>(keys: &Keyring, binding: &str, value: &T) -> Option<String> {
        let plain = Secret::new(serde_json::to_string(value).ok()?);
        let sealed = keys
            .seal(binding.as_bytes(), plain.expose_secret().as_bytes())
            .ok()?;
        Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).ok()?))
    }

    fn open<T: DeserializeOwned>(keys: &Keyring, binding: &str, value: &str) -> Option<T> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let sealed: SealedBox = serde_json::from_slice(&bytes).ok()?;
        let plain = keys.open(&sealed, binding.as_bytes()).ok()?;
        serde_json::from_slice(&plain).ok()
    }

    /// The `Set-Cookie` of `session`.
    pub(crate) fn session_cookie(&self, session: &Session, max_age: u64) -> Option<HeaderValue> {
        let value = Self::seal(&self.session, SESSION_COOKIE, session)?;
        // Strict: no other site's page, link or form sends it.
        self.cookie(SESSION_COOKIE, &value, "/ui", "Strict", max_age)
    }

    /// The session of `value`, when it opens and has not lapsed.
    pub(crate) fn session(&self, value: &str) -> Option<Session> {
        Self::open::<Session>(&self.session, SESSION_COOKIE, value)
            .filter(|session| session.expires > OffsetDateTime::now_utc().unix_timestamp())
    }

    /// The `Set-Cookie` of `signin`.
    pub(crate) fn signin_cookie(&self, signin: &SignIn, max_age: u64) -> Option<HeaderValue> {
        let value = Self::seal(&self.signin, SIGNIN_COOKIE, signin)?;
        // Lax: it must come back with the identity provider's top-level redirect.
        self.cookie(SIGNIN_COOKIE, &value, "/ui/callback", "Lax", max_age)
    }

    /// The sign-in of `value`, when it opens and has not lapsed.
    pub(crate) fn signin(&self, value: &str) -> Option<SignIn> {
        Self::open::<SignIn>(&self.signin, SIGNIN_COOKIE, value)
            .filter(|signin| signin.expires > OffsetDateTime::now_utc().unix_timestamp())
    }

    /// A cookie that `name` is gone.
    pub(crate) fn cleared(&self, name: &str, path: &str) -> Option<HeaderValue> {
        self.cookie(name, "", path, "Strict", 0)
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        path: &str,
        same_site: &str,
        max_age: u64,
    ) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        ))
        .ok()
    }
}

/// A random token, 32 bytes in hex.
pub(crate) fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test that fails should stop")]

    use super::*;

    fn cookies() -> Cookies {
        Cookies::new(&Keyring::new("k", [9; 32]), true)
    }

    fn value_of(cookie: &HeaderValue) -> String {
        let text = cookie.to_str().unwrap();
        text.split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    }

    fn session(expires_in: i64) -> Session {
        Session {
            user: "bob".into(),
            csrf: random_token().unwrap(),
            expires: OffsetDateTime::now_utc().unix_timestamp() + expires_in,
        }
    }

    #[test]
    fn a_session_opens_with_its_own_key_only_and_not_once_lapsed() {
        let cookie = cookies().session_cookie(&session(60), 60).unwrap();
        let text = cookie.to_str().unwrap();
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/ui",
            "Max-Age=60",
        ] {
            assert!(text.contains(attribute), "{text}");
        }
        let value = value_of(&cookie);
        assert_eq!(cookies().session(&value).unwrap().user, "bob");
        // Another key, or the sign-in cookie's purpose, opens nothing.
        let other = Cookies::new(&Keyring::new("k", [8; 32]), true);
        assert!(other.session(&value).is_none());
        assert!(cookies().signin(&value).is_none());
        // A bit changed: nothing.
        let mut tampered = value.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            cookies()
                .session(&String::from_utf8(tampered).unwrap())
                .is_none()
        );
        // Lapsed: nothing.
        let lapsed = value_of(&cookies().session_cookie(&session(-1), 60).unwrap());
        assert!(cookies().session(&lapsed).is_none());
    }

    #[test]
    fn the_signin_cookie_comes_back_from_the_provider_and_to_the_callback_only() {
        let signin = SignIn {
            issuer: "https://login.example.com".into(),
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".repeat(43),
            redirect_uri: "https://sidecar.example.com/ui/callback".into(),
            iss_required: false,
            expires: OffsetDateTime::now_utc().unix_timestamp() + 60,
        };
        let cookie = cookies().signin_cookie(&signin, 600).unwrap();
        let text = cookie.to_str().unwrap();
        assert!(
            text.contains("SameSite=Lax") && text.contains("Path=/ui/callback"),
            "{text}"
        );
        assert_eq!(cookies().signin(&value_of(&cookie)).unwrap().state, "s");
        assert!(!text.contains(&"v".repeat(43)), "the verifier is sealed");
    }
}
