//! Who a user is at a provider: what its user endpoint says, holding no token.

use serde::Serialize;
use serde_json::{Map, Value};

/// Who the user is at the provider, as its user endpoint says. Holds no token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Account {
    /// The provider's stable id of the user (`sub`, GitHub's numeric `id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's handle (GitHub's `login`, OpenID's `preferred_username`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A picture of the user (GitHub's `avatar_url`, OpenID's `picture`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

impl Account {
    /// The account an OpenID Connect userinfo answer describes.
    ///
    /// ```
    /// let claims = serde_json::json!({"sub": "248289761001", "email": "jane@example.com", "picture": "https://p/1"});
    /// let account = identity_oauth::Account::from_openid(claims.as_object().unwrap());
    /// assert_eq!(account.id.as_deref(), Some("248289761001"));
    /// assert_eq!(account.avatar_url.as_deref(), Some("https://p/1"));
    /// ```
    pub fn from_openid(claims: &Map<String, Value>) -> Self {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        Self {
            id: text("sub"),
            login: text("preferred_username"),
            name: text("name"),
            email: text("email"),
            avatar_url: text("picture"),
        }
    }

    /// The account GitHub's `GET /user` describes: `id`, `login`, `name`, `email`,
    /// `avatar_url`.
    ///
    /// ```
    /// let user = serde_json::json!({"id": 583231, "login": "octocat", "avatar_url": "https://avatars.githubusercontent.com/u/583231"});
    /// let account = identity_oauth::Account::from_github(user.as_object().unwrap());
    /// assert_eq!(account.login.as_deref(), Some("octocat"));
    /// assert_eq!(account.id.as_deref(), Some("583231"));
    /// ```
    pub fn from_github(user: &Map<String, Value>) -> Self {
        let text = |name: &str| user.get(name).and_then(Value::as_str).map(str::to_owned);
        Self {
            id: user.get("id").and_then(|id| match id {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => Some(s.clone()),
                _ => None,
            }),
            login: text("login"),
            name: text("name"),
            email: text("email"),
            avatar_url: text("avatar_url"),
        }
    }
}
