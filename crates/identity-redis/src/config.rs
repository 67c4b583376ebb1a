//! [`RedisConfig`]: where the Redis server is and how to authenticate to it.

use std::path::PathBuf;
use std::time::Duration;

use identity_core::ConfigError;
use serde::Deserialize;

use crate::state::{Redis, Sentinels};

/// How to reach a Redis server (7 or later; or a server speaking its protocol, such as Valkey):
/// at `url`, or as the master `master_name` that the Redis Sentinel instances at `sentinels`
/// report (asked again after a failover).
///
/// The password is never in the configuration: `password_env` names the variable holding it.
/// With `username`, the server checks an ACL user (`AUTH username password`); without, the
/// default user. A `rediss://` URL speaks TLS, verified against `tls_ca_file` when given, else
/// the system's roots.
///
/// ```
/// let config: identity_redis::RedisConfig = serde_json::from_value(serde_json::json!({
///     "url": "rediss://redis.internal:6380/0",
///     "username": "agent-identity",
///     "password_env": "REDIS_PASSWORD",
/// }))?;
/// assert_eq!(config.prefix, "agent-identity");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`, or `rediss://` for TLS; no password in it.
    #[serde(default)]
    pub url: Option<String>,
    /// Or: the Sentinel instances (`redis://host:26379`, `rediss://` for TLS to them and to
    /// the master), with `master_name`.
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the master under.
    #[serde(default)]
    pub master_name: Option<String>,
    /// The ACL user the sentinels themselves ask for, if not the default one.
    #[serde(default)]
    pub sentinel_username: Option<String>,
    /// The environment variable holding the sentinels' own password (`requirepass` in their
    /// configuration), when they ask for one.
    #[serde(default)]
    pub sentinel_password_env: Option<String>,
    /// The ACL user, if not the default one.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A PEM file of the CAs a `rediss://` server's certificate must chain to.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// What every key starts with, so that several deployments may share one server.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long one command may take, in milliseconds, connecting included.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_prefix() -> String {
    "agent-identity".into()
}

fn default_timeout_ms() -> u64 {
    2_000
}

impl RedisConfig {
    /// A configuration for `url` with every other field at its default.
    ///
    /// ```
    /// let config = identity_redis::RedisConfig::new("redis://127.0.0.1:6379");
    /// assert_eq!(config.timeout_ms, 2_000);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            sentinels: Vec::new(),
            master_name: None,
            sentinel_username: None,
            sentinel_password_env: None,
            username: None,
            password_env: None,
            tls_ca_file: None,
            prefix: default_prefix(),
            timeout_ms: default_timeout_ms(),
        }
    }

    /// The server this configuration names, checked in full; `location` names the
    /// configuration's section in errors, and `env` reads the password's variable. No
    /// connection is made until the first command.
    ///
    /// ```
    /// let mut config = identity_redis::RedisConfig::new("redis://:hunter2@127.0.0.1:6379");
    /// let err = config.connect("redis.shared", &|_| None).unwrap_err();
    /// assert_eq!(err.to_string(), "redis.shared, field `url`: must carry no password: put it in the variable `password_env` names");
    /// config.url = Some("redis://127.0.0.1:6379".into());
    /// config.password_env = Some("REDIS_PASSWORD".into());
    /// let err = config.connect("redis.shared", &|_| None).unwrap_err();
    /// assert!(err.to_string().contains("`REDIS_PASSWORD` is not set"), "{err}");
    /// assert!(config.connect("redis.shared", &|_| Some("secret".into())).is_ok());
    /// ```
    pub fn connect(
        &self,
        location: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Redis, ConfigError> {
        let problem = |field: &str, text: String| ConfigError::new(location, Some(field), text);
        let tls = match (&self.url, self.sentinels.is_empty()) {
            (Some(url), true) => url_parts(url).map_err(|text| problem("url", text))?.tls,
            (None, false) => {
                let mut tls = Vec::new();
                for url in &self.sentinels {
                    let parts = url_parts(url)
                        .map_err(|text| problem("sentinels", format!("`{url}` {text}")))?;
                    tls.push(parts.tls);
                }
                if tls.iter().any(|t| *t != tls[0]) {
                    return Err(problem(
                        "sentinels",
                        "mixes redis:// and rediss://: use one for all".into(),
                    ));
                }
                if self.master_name.as_deref().is_none_or(str::is_empty) {
                    return Err(problem(
                        "master_name",
                        "is missing: name the master the sentinels monitor".into(),
                    ));
                }
                tls[0]
            }
            (Some(_), false) => {
                return Err(problem(
                    "sentinels",
                    "names a second way to the server: keep `url` or `sentinels`".into(),
                ));
            }
            (None, true) => {
                return Err(problem(
                    "url",
                    "is missing: name the server (`url`), or its sentinels (`sentinels` and `master_name`)".into(),
                ));
            }
        };
        if self.master_name.is_some() && self.sentinels.is_empty() {
            return Err(problem("master_name", "is set without `sentinels`".into()));
        }
        if let Err(err) = identity_state::check_key(&self.prefix) {
            return Err(problem("prefix", err.to_string()));
        }
        if self.timeout_ms == 0 {
            return Err(problem("timeout_ms", "must be at least 1".into()));
        }
        let password = Self::password(
            ("username", self.username.as_deref()),
            ("password_env", self.password_env.as_deref()),
            &problem,
            env,
        )?;
        let sentinel_password = Self::password(
            ("sentinel_username", self.sentinel_username.as_deref()),
            (
                "sentinel_password_env",
                self.sentinel_password_env.as_deref(),
            ),
            &problem,
            env,
        )?;
        if self.sentinels.is_empty() {
            for (field, set) in [
                ("sentinel_username", self.sentinel_username.is_some()),
                (
                    "sentinel_password_env",
                    self.sentinel_password_env.is_some(),
                ),
            ] {
                if set {
                    return Err(problem(field, "is set without `sentinels`".into()));
                }
            }
        }
        let ca = match &self.tls_ca_file {
            None => None,
            Some(_) if !tls => {
                return Err(problem(
                    "tls_ca_file",
                    "is set for a plain `redis://` URL: use `rediss://`".into(),
                ));
            }
            Some(path) => match std::fs::read(path) {
                Ok(pem) => Some(pem),
                Err(err) => {
                    return Err(problem(
                        "tls_ca_file",
                        format!("cannot be read ({}): {err}", path.display()),
                    ));
                }
            },
        };
        let timeout = Duration::from_millis(self.timeout_ms);
        let username = self.username.as_deref();
        match (&self.url, &self.master_name) {
            (Some(url), _) => Redis::open(url, username, password, ca, &self.prefix, timeout)
                .map_err(|text| problem("url", text)),
            (None, Some(name)) => Redis::sentinel(
                Sentinels {
                    urls: &self.sentinels,
                    master_name: name,
                    username: self.sentinel_username.as_deref(),
                    password: sentinel_password,
                },
                username,
                password,
                ca,
                &self.prefix,
                timeout,
            )
            .map_err(|text| problem("sentinels", text)),
            // Checked above: a URL or sentinels with a master's name.
            (None, None) => Err(problem("url", "is missing".into())),
        }
    }

    /// The password the variable `password_env` names, checked with the `username` it goes
    /// with: an ACL user needs a password, and a variable named must be set.
    fn password(
        (user_field, username): (&str, Option<&str>),
        (env_field, variable): (&str, Option<&str>),
        problem: &dyn Fn(&str, String) -> ConfigError,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        let password = match variable {
            None => None,
            Some(variable) => match env(variable) {
                Some(value) if !value.is_empty() => Some(value),
                _ => {
                    return Err(problem(
                        env_field,
                        format!("names a variable that is not set: `{variable}` is not set"),
                    ));
                }
            },
        };
        if username.is_some() && password.is_none() {
            return Err(problem(
                user_field,
                format!("needs `{env_field}` (an ACL user authenticates with a password)"),
            ));
        }
        Ok(password)
    }
}

/// What the URL says of itself, checked before the client parses it.
struct UrlParts {
    tls: bool,
}

fn url_parts(url: &str) -> Result<UrlParts, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "is not a URL: use redis://host:port or rediss://host:port".to_owned())?;
    let tls = match scheme {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(format!(
                "has scheme `{other}`: use redis:// or rediss:// (unix sockets are not supported)"
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return Err(
            "must carry no password: put it in the variable `password_env` names".to_owned(),
        );
    }
    if authority.rsplit_once('@').is_some() {
        return Err("must carry no user: use `username`".to_owned());
    }
    if authority.is_empty() {
        return Err("has no host".to_owned());
    }
    Ok(UrlParts { tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: &RedisConfig) -> String {
        config
            .connect("redis.x", &|_| None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut config = RedisConfig::new("http://127.0.0.1:6379");
        assert!(refused(&config).contains("field `url`: has scheme `http`"));
        config.url = Some("redis://alice@127.0.0.1".into());
        assert!(refused(&config).contains("must carry no user"));
        config.url = Some("redis://".into());
        assert!(refused(&config).contains("has no host"));
        config.url = Some("redis://127.0.0.1:6379".into());
        config.username = Some("agent".into());
        assert!(refused(&config).contains("field `username`: needs `password_env`"));
        config.username = None;
        config.tls_ca_file = Some("/nonexistent.pem".into());
        assert!(refused(&config).contains("field `tls_ca_file`: is set for a plain"));
        config.url = Some("rediss://127.0.0.1:6379".into());
        assert!(refused(&config).contains("cannot be read (/nonexistent.pem)"));
        config.tls_ca_file = None;
        config.prefix = "a b".into();
        assert!(refused(&config).contains("field `prefix`"));
        config.prefix = "ok".into();
        config.timeout_ms = 0;
        assert!(refused(&config).contains("field `timeout_ms`"));
        config.timeout_ms = 10;
        assert!(config.connect("redis.x", &|_| None).is_ok());
    }

    #[test]
    fn sentinels_need_a_master_and_exclude_a_url() {
        let mut config = RedisConfig::new("redis://127.0.0.1:6379");
        config.sentinels = vec!["redis://127.0.0.1:26379".into()];
        assert!(refused(&config).contains("field `sentinels`: names a second way"));
        config.url = None;
        assert!(refused(&config).contains("field `master_name`: is missing"));
        config.master_name = Some("main".into());
        config.sentinels.push("rediss://127.0.0.1:26380".into());
        assert!(refused(&config).contains("mixes redis:// and rediss://"));
        config.sentinels.pop();
        config.sentinels.push("redis://:pw@127.0.0.1:26380".into());
        assert!(refused(&config).contains("must carry no password"));
        config.sentinels.pop();
        assert!(config.connect("redis.x", &|_| None).is_ok());
        config.sentinels.clear();
        assert!(refused(&config).contains("field `url`: is missing"));
        let mut direct = RedisConfig::new("redis://127.0.0.1:6379");
        direct.master_name = Some("main".into());
        assert!(refused(&direct).contains("is set without `sentinels`"));
        direct.master_name = None;
        direct.sentinel_password_env = Some("SENTINEL_PASSWORD".into());
        assert!(
            refused(&direct)
                .contains("field `sentinel_password_env`: names a variable that is not set")
        );
    }

    #[test]
    fn the_sentinels_own_user_needs_its_password() {
        let mut config = RedisConfig::new("");
        config.url = None;
        config.sentinels = vec!["redis://127.0.0.1:26379".into()];
        config.master_name = Some("main".into());
        config.sentinel_username = Some("watcher".into());
        assert!(refused(&config).contains(
            "field `sentinel_username`: needs `sentinel_password_env` (an ACL user authenticates with a password)"
        ));
        config.sentinel_password_env = Some("SENTINEL_PASSWORD".into());
        assert!(config.connect("redis", &|_| Some("pw".into())).is_ok());
        let mut direct = RedisConfig::new("redis://127.0.0.1:6379");
        direct.sentinel_username = Some("watcher".into());
        direct.sentinel_password_env = Some("SENTINEL_PASSWORD".into());
        let err = direct
            .connect("redis", &|_| Some("pw".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `sentinel_username`: is set without `sentinels`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<RedisConfig>(
            serde_json::json!({"url": "redis://h", "pasword_env": "X"}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `pasword_env`"),
            "{err}"
        );
    }
}
