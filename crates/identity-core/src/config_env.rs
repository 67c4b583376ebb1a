//! [`ConfigEnv`]: what a backend's configuration struct is read against.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{ConfigError, Secret};

/// Where a configuration is read: the directory its relative paths start from, and the
/// environment variables that hold its secrets.
///
/// A configuration names its secrets by environment variable and never holds them, so that a
/// configuration file can be read, checked in and shown without exposing anything. Each
/// backend's configuration struct (`VaultConfig`, `AwsConfig`, ...) is turned into its store
/// against a `ConfigEnv`; tests give it a map instead of the process environment.
///
/// ```
/// use std::path::Path;
/// use identity_core::ConfigEnv;
///
/// let vars = |name: &str| (name == "API_KEY").then(|| "sk-test".to_owned());
/// let env = ConfigEnv::new(Path::new("/etc/agent-identity"), &vars);
/// assert_eq!(env.secret("store `a`", "key_env", "API_KEY")?.expose_secret(), "sk-test");
/// let err = env.secret("store `a`", "key_env", "MISSING").unwrap_err();
/// assert_eq!(err.to_string(), "store `a`, field `key_env`: environment variable `MISSING` is not set");
/// assert_eq!(env.path(Path::new("ca.pem")), Path::new("/etc/agent-identity/ca.pem"));
/// # Ok::<(), identity_core::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
pub struct ConfigEnv<'a> {
    base: &'a Path,
    vars: &'a dyn Fn(&str) -> Option<String>,
}

impl fmt::Debug for ConfigEnv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The variables are never listed: some hold secrets.
        f.debug_struct("ConfigEnv")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl<'a> ConfigEnv<'a> {
    /// Relative paths start at `base`; `vars` looks an environment variable up.
    ///
    /// ```
    /// # use std::path::Path;
    /// let none = |_: &str| None;
    /// let env = identity_core::ConfigEnv::new(Path::new("."), &none);
    /// assert!(env.var("X").is_none());
    /// ```
    pub fn new(base: &'a Path, vars: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { base, vars }
    }

    /// Relative paths start at `base`; variables come from this process's environment.
    ///
    /// ```
    /// # use std::path::Path;
    /// let env = identity_core::ConfigEnv::process(Path::new("."));
    /// assert!(env.var("AGENT_IDENTITY_SURELY_UNSET_VARIABLE").is_none());
    /// ```
    pub fn process(base: &'a Path) -> Self {
        Self {
            base,
            vars: &process_var,
        }
    }

    /// The directory relative paths start from.
    ///
    /// ```
    /// # use std::path::Path;
    /// assert_eq!(identity_core::ConfigEnv::process(Path::new("/srv")).base(), Path::new("/srv"));
    /// ```
    pub fn base(&self) -> &Path {
        self.base
    }

    /// `path`, taken from the base directory when it is relative.
    ///
    /// ```
    /// # use std::path::Path;
    /// let env = identity_core::ConfigEnv::process(Path::new("/srv"));
    /// assert_eq!(env.path(Path::new("/abs/key.pem")), Path::new("/abs/key.pem"));
    /// assert_eq!(env.path(Path::new("key.pem")), Path::new("/srv/key.pem"));
    /// ```
    pub fn path(&self, path: &Path) -> PathBuf {
        self.base.join(path)
    }

    /// The value of environment variable `name`, if it is set.
    ///
    /// ```
    /// # use std::path::Path;
    /// let vars = |name: &str| (name == "REGION").then(|| "eu-west-1".to_owned());
    /// let env = identity_core::ConfigEnv::new(Path::new("."), &vars);
    /// assert_eq!(env.var("REGION").as_deref(), Some("eu-west-1"));
    /// ```
    pub fn var(&self, name: &str) -> Option<String> {
        (self.vars)(name)
    }

    /// The value of environment variable `variable`, named by `field` of `location`; an unset
    /// or empty variable is an error that says which field named it.
    ///
    /// ```
    /// # use std::path::Path;
    /// let vars = |name: &str| (name == "EMPTY").then(String::new);
    /// let env = identity_core::ConfigEnv::new(Path::new("."), &vars);
    /// assert!(env.value("store `x`", "address_env", "EMPTY").is_err());
    /// ```
    pub fn value(
        &self,
        location: &str,
        field: &str,
        variable: &str,
    ) -> Result<String, ConfigError> {
        match self.var(variable) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ConfigError::new(
                location,
                Some(field),
                format!("environment variable `{variable}` is not set"),
            )),
        }
    }

    /// [`value`](Self::value), kept as a [`Secret`].
    ///
    /// ```
    /// # use std::path::Path;
    /// let vars = |_: &str| Some("hunter2".to_owned());
    /// let env = identity_core::ConfigEnv::new(Path::new("."), &vars);
    /// let secret = env.secret("store `x`", "token_env", "VAULT_TOKEN")?;
    /// assert!(!format!("{secret:?}").contains("hunter2"));
    /// # Ok::<(), identity_core::ConfigError>(())
    /// ```
    pub fn secret(
        &self,
        location: &str,
        field: &str,
        variable: &str,
    ) -> Result<Secret, ConfigError> {
        self.value(location, field, variable).map(Secret::new)
    }
}
