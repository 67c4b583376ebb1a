//! Environment variables named by the configuration.

use agent_identity::ConfigError;

/// The value of environment variable `variable`, named by `field` of `location`.
pub(crate) fn env_value(
    location: &str,
    field: &str,
    variable: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    match env(variable) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(ConfigError::new(
            location,
            Some(field),
            format!("environment variable `{variable}` is not set"),
        )),
    }
}
