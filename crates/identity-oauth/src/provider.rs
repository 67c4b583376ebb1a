//! The accounts users connect: presets for GitHub, Google, any OpenID provider, a client
//! registered at run time, and services that take a personal API token instead of OAuth.

use std::fmt;
use std::sync::Arc;

use identity_core::{Error, Secret};
use identity_dcr::{ClientProfile, ClientRegistry, Target};
use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
use tokio::sync::OnceCell;
use url::Url;

use crate::BACKEND;
use crate::account::Account;
use crate::flow::{AuthorizationRequest, PendingAuthorization};
use crate::github::{github_user, revoke_at_github};
use crate::tokens::{OAuthClient, TokenSet};

/// Where a provider's OAuth client comes from.
#[expect(
    clippy::large_enum_variant,
    reason = "one per provider, built once and kept behind a box"
)]
enum ClientSource {
    /// Known endpoints and a client id (GitHub, or a client built by the caller).
    Ready(OAuthClient),
    /// The issuer's discovery document (RFC 8414, then OpenID), read at first use.
    Discovered {
        http: HttpClient,
        issuer: String,
        credentials: ClientCredentials,
    },
    /// A client registered at run time (RFC 7591) for the target's authorization server.
    Registered {
        registry: Arc<ClientRegistry>,
        target: Target,
        profile: ClientProfile,
    },
}

/// How the user's account is read.
#[derive(Debug, Clone)]
enum AccountSource {
    /// The OpenID userinfo endpoint.
    UserInfo,
    /// GitHub's `GET /user` under this API base.
    GitHub(Url),
}

/// How tokens are revoked.
#[derive(Debug, Clone)]
enum Revocation {
    /// RFC 7009 at the server's `revocation_endpoint`.
    Standard,
    /// GitHub's `DELETE /applications/{client_id}/token` under this API base.
    GitHub(Url),
}

struct OAuthAccess {
    source: ClientSource,
    scopes: Vec<String>,
    /// Scopes a connect may ask for instead of `scopes`; `scopes` when unset.
    allowed_scopes: Option<Vec<String>>,
    resources: Vec<String>,
    prompt: Option<String>,
    extra: Vec<(String, String)>,
    account: AccountSource,
    revocation: Revocation,
    client: OnceCell<OAuthClient>,
}

enum Access {
    OAuth(Box<OAuthAccess>),
    ApiToken { token_page: Option<String> },
}

/// An account users connect, by name (`github`, `google`, ...): an OAuth 2.1 provider with its
/// client, scopes and quirks, or a service that takes a personal API token (Kaggle).
///
/// Presets: [`Provider::github`] (a client secret is required; the account from
/// `https://api.github.com/user`), [`Provider::google`] (PKCE, offline access with consent),
/// [`Provider::openid`] (any provider, from its discovery document), [`Provider::registered`]
/// (a client registered through DCR), [`Provider::kaggle`] and [`Provider::api_token`].
/// Discovery and registration happen at first use, not at construction.
///
/// ```
/// use identity_core::Secret;
/// let github = identity_oauth::Provider::github("Iv1.0123", Secret::new("from-the-environment"))?
///     .scopes(["read:user", "repo"]);
/// assert_eq!(github.name(), "github");
/// assert!(github.is_oauth());
/// assert!(!identity_oauth::Provider::kaggle().is_oauth());
/// # Ok::<(), identity_core::Error>(())
/// ```
pub struct Provider {
    name: String,
    access: Access,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.access {
            Access::OAuth(_) => "oauth",
            Access::ApiToken { .. } => "api-token",
        };
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

/// The credentials of a client with an optional secret: `client_secret_basic` with one, a
/// public client without.
fn credentials_of(client_id: String, client_secret: Option<Secret>) -> ClientCredentials {
    match client_secret {
        Some(secret) => ClientCredentials::basic(client_id, secret),
        None => ClientCredentials::public(client_id),
    }
}

impl Provider {
    fn oauth(name: impl Into<String>, source: ClientSource) -> Self {
        Self {
            name: name.into(),
            access: Access::OAuth(Box::new(OAuthAccess {
                source,
                scopes: Vec::new(),
                allowed_scopes: None,
                resources: Vec::new(),
                prompt: None,
                extra: Vec::new(),
                account: AccountSource::UserInfo,
                revocation: Revocation::Standard,
                client: OnceCell::new(),
            })),
        }
    }

    /// A provider whose client is already built (its server's metadata known), named `name`.
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, ClientCredentials, HttpClient, OutboundPolicy};
    /// # let server = AuthorizationServerMetadata::from_json(serde_json::json!({"issuer": "https://as.example.com"}), "https://as.example.com", &OutboundPolicy::default())?;
    /// let client = identity_oauth::OAuthClient::new(HttpClient::new(OutboundPolicy::default())?, server, ClientCredentials::public("agent"));
    /// let provider = identity_oauth::Provider::with_client("corp", client);
    /// assert_eq!(provider.name(), "corp");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn with_client(name: impl Into<String>, client: OAuthClient) -> Self {
        Self::oauth(name, ClientSource::Ready(client))
    }

    /// GitHub (an OAuth app or a GitHub App's user tokens), named `github`. GitHub demands the
    /// client secret at the token endpoint even with PKCE. It has no discovery document and no
    /// userinfo endpoint: the account is read from `https://api.github.com/user` (`login`,
    /// `avatar_url`), and tokens are revoked with `DELETE /applications/{client_id}/token`.
    /// Scopes default to `read:user`.
    ///
    /// ```
    /// let github = identity_oauth::Provider::github("Iv1.0123", identity_core::Secret::new("s"))?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn github(client_id: impl Into<String>, client_secret: Secret) -> Result<Self, Error> {
        Self::github_at(
            client_id,
            client_secret,
            Url::parse("https://github.com").map_err(|_| invalid_url("github"))?,
            Url::parse("https://api.github.com").map_err(|_| invalid_url("github"))?,
            OutboundPolicy::default(),
        )
    }

    /// GitHub at other addresses, under `policy`: GitHub Enterprise Server
    /// (`https://ghe.example.com` and `https://ghe.example.com/api/v3`).
    ///
    /// ```
    /// let ghe = identity_oauth::Provider::github_at(
    ///     "Iv1.0123", identity_core::Secret::new("s"),
    ///     "https://ghe.example.com".parse().unwrap(), "https://ghe.example.com/api/v3".parse().unwrap(),
    ///     identity_http::OutboundPolicy::default())?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn github_at(
        client_id: impl Into<String>,
        client_secret: Secret,
        web: Url,
        api: Url,
        policy: OutboundPolicy,
    ) -> Result<Self, Error> {
        let issuer = web.as_str().trim_end_matches('/').to_owned();
        policy.check_url(api.as_str(), "github api")?;
        let server = AuthorizationServerMetadata::from_json(
            serde_json::json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/login/oauth/authorize"),
                "token_endpoint": format!("{issuer}/login/oauth/access_token"),
                "code_challenge_methods_supported": ["S256"],
            }),
            &issuer,
            &policy,
        )?;
        let client = OAuthClient::new(
            HttpClient::new(policy)?,
            server,
            ClientCredentials::basic(client_id, client_secret),
        );
        let mut provider = Self::with_client("github", client).scopes(["read:user"]);
        if let Access::OAuth(access) = &mut provider.access {
            access.account = AccountSource::GitHub(api.clone());
            access.revocation = Revocation::GitHub(api);
        }
        Ok(provider)
    }

    /// Google, named `google`, from its discovery document: PKCE, `access_type=offline` with
    /// `prompt=consent` (so that Google issues a refresh token every time), scopes `openid
    /// email profile` by default.
    ///
    /// ```
    /// let google = identity_oauth::Provider::google("123.apps.googleusercontent.com", None)?
    ///     .scopes(["openid", "email", "https://www.googleapis.com/auth/drive.readonly"]);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn google(
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
    ) -> Result<Self, Error> {
        Ok(Self::openid(
            "google",
            "https://accounts.google.com",
            client_id,
            client_secret,
            OutboundPolicy::default(),
        )?
        .prompt("consent")
        .extra("access_type", "offline"))
    }

    /// Any OpenID Connect provider, named `name`, from the discovery document of `issuer`
    /// (fetched under `policy` at first use). Scopes default to `openid email profile`.
    ///
    /// ```
    /// let corp = identity_oauth::Provider::openid("corp", "https://login.example.com", "agent", None,
    ///     identity_http::OutboundPolicy::default())?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn openid(
        name: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        policy: OutboundPolicy,
    ) -> Result<Self, Error> {
        let issuer = issuer.into();
        policy.check_url(&issuer, "issuer")?;
        Ok(Self::oauth(
            name,
            ClientSource::Discovered {
                http: HttpClient::new(policy)?,
                issuer,
                credentials: credentials_of(client_id.into(), client_secret),
            },
        )
        .scopes(["openid", "email", "profile"]))
    }

    /// A provider whose client is registered at run time through `registry` (RFC 7591) with
    /// `profile`, whose metadata must name the redirect URI the flows use
    /// ([`identity_dcr::ClientMetadata::web_app`]). A [`Target::Resource`] is also asked for as
    /// the RFC 8707 resource.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use identity_dcr::{ClientMetadata, ClientProfile, ClientRegistry, Dcr, MemoryPersistence, Target};
    /// let registry = Arc::new(ClientRegistry::new(Dcr::new(identity_http::OutboundPolicy::default())?, Arc::new(MemoryPersistence::default())));
    /// let profile = ClientProfile::new("mcp", ClientMetadata::web_app("agent", "https://app.example.com/oauth/mcp/callback", "openid"));
    /// let mcp = identity_oauth::Provider::registered("mcp", registry, Target::Resource("https://mcp.example.com/mcp".into()), profile);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn registered(
        name: impl Into<String>,
        registry: Arc<ClientRegistry>,
        target: Target,
        profile: ClientProfile,
    ) -> Self {
        let resource = match &target {
            Target::Resource(resource) => Some(resource.clone()),
            Target::Issuer(_) => None,
        };
        let provider = Self::oauth(
            name,
            ClientSource::Registered {
                registry,
                target,
                profile,
            },
        );
        match resource {
            Some(resource) => provider.resource(resource),
            None => provider,
        }
    }

    /// Kaggle, named `kaggle`: a personal API token (the `key` of `kaggle.json`, made at
    /// <https://www.kaggle.com/settings/account>), stored as the user gives it; no OAuth.
    ///
    /// ```
    /// let kaggle = identity_oauth::Provider::kaggle();
    /// assert_eq!(kaggle.token_page(), Some("https://www.kaggle.com/settings/account"));
    /// ```
    pub fn kaggle() -> Self {
        Self::api_token(
            "kaggle",
            Some("https://www.kaggle.com/settings/account".into()),
        )
    }

    /// A service that takes a personal API token, named `name`; `token_page` is where users
    /// make one.
    ///
    /// ```
    /// let hf = identity_oauth::Provider::api_token("huggingface", Some("https://huggingface.co/settings/tokens".into()));
    /// assert!(!hf.is_oauth());
    /// ```
    pub fn api_token(name: impl Into<String>, token_page: Option<String>) -> Self {
        Self {
            name: name.into(),
            access: Access::ApiToken { token_page },
        }
    }

    fn with_oauth(mut self, change: impl FnOnce(&mut OAuthAccess)) -> Self {
        if let Access::OAuth(access) = &mut self.access {
            change(access);
        }
        self
    }

    /// The scopes asked for (replacing the preset's).
    ///
    /// ```
    /// # let p = identity_oauth::Provider::openid("corp", "https://login.example.com", "a", None, identity_http::OutboundPolicy::default())?;
    /// let p = p.scopes(["openid", "offline_access"]);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.with_oauth(|access| access.scopes = scopes)
    }

    /// The scopes a connect may ask for instead of the provider's own ([`Provider::authorize_scopes`]);
    /// the provider's scopes when not set.
    ///
    /// ```
    /// # let p = identity_oauth::Provider::openid("corp", "https://login.example.com", "a", None, identity_http::OutboundPolicy::default())?;
    /// let p = p.scopes(["openid"]).allowed_scopes(["openid", "calendar.read", "drive.read"]);
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn allowed_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.with_oauth(|access| access.allowed_scopes = Some(scopes))
    }

    /// An RFC 8707 resource asked for on authorization, code exchange and refresh.
    ///
    /// ```
    /// # let p = identity_oauth::Provider::openid("corp", "https://login.example.com", "a", None, identity_http::OutboundPolicy::default())?;
    /// let p = p.resource("https://api.example.com");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn resource(self, resource: impl Into<String>) -> Self {
        let resource = resource.into();
        self.with_oauth(|access| access.resources.push(resource))
    }

    /// The `prompt` sent on authorization (`consent`, `login`, ...).
    ///
    /// ```
    /// # let p = identity_oauth::Provider::openid("corp", "https://login.example.com", "a", None, identity_http::OutboundPolicy::default())?;
    /// let p = p.prompt("consent");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn prompt(self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.with_oauth(|access| access.prompt = Some(prompt))
    }

    /// Another authorization parameter (Google's `access_type`, ...).
    ///
    /// ```
    /// # let p = identity_oauth::Provider::openid("corp", "https://login.example.com", "a", None, identity_http::OutboundPolicy::default())?;
    /// let p = p.extra("hd", "example.com");
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn extra(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let pair = (name.into(), value.into());
        self.with_oauth(|access| access.extra.push(pair))
    }

    /// The provider's name.
    ///
    /// ```
    /// assert_eq!(identity_oauth::Provider::kaggle().name(), "kaggle");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scopes a flow asks for unless told otherwise; none for an API-token provider.
    ///
    /// ```
    /// let github = identity_oauth::Provider::github("Iv1.0123", identity_core::Secret::new("s"))?
    ///     .scopes(["read:user"]);
    /// assert_eq!(github.default_scopes(), ["read:user"]);
    /// assert!(identity_oauth::Provider::kaggle().default_scopes().is_empty());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn default_scopes(&self) -> &[String] {
        match &self.access {
            Access::OAuth(access) => &access.scopes,
            Access::ApiToken { .. } => &[],
        }
    }

    /// True for an OAuth provider, false for one that takes an API token.
    ///
    /// ```
    /// assert!(!identity_oauth::Provider::kaggle().is_oauth());
    /// ```
    pub fn is_oauth(&self) -> bool {
        matches!(self.access, Access::OAuth(_))
    }

    /// Where users make an API token, for a provider that takes one.
    ///
    /// ```
    /// assert!(identity_oauth::Provider::kaggle().token_page().is_some());
    /// ```
    pub fn token_page(&self) -> Option<&str> {
        match &self.access {
            Access::ApiToken { token_page } => token_page.as_deref(),
            Access::OAuth(_) => None,
        }
    }

    /// The RFC 8707 resources asked for.
    ///
    /// ```
    /// assert!(identity_oauth::Provider::kaggle().resources().is_empty());
    /// ```
    pub fn resources(&self) -> &[String] {
        match &self.access {
            Access::OAuth(access) => &access.resources,
            Access::ApiToken { .. } => &[],
        }
    }

    fn oauth_access(&self, operation: &'static str) -> Result<&OAuthAccess, Error> {
        match &self.access {
            Access::OAuth(access) => Ok(access),
            Access::ApiToken { .. } => Err(Error::NotSupported {
                operation,
                backend: BACKEND,
            }),
        }
    }

    /// The provider's OAuth client: discovered or registered at the first call, then kept. A
    /// failed discovery or registration is tried again at the next call.
    ///
    /// ```no_run
    /// # async fn example(provider: identity_oauth::Provider) -> Result<(), identity_core::Error> {
    /// let client = provider.client().await?;
    /// println!("{}", client.server().issuer);
    /// # Ok(()) }
    /// ```
    pub async fn client(&self) -> Result<&OAuthClient, Error> {
        let access = self.oauth_access("OAuth flows for a provider that takes an API token")?;
        access
            .client
            .get_or_try_init(|| async {
                match &access.source {
                    ClientSource::Ready(client) => Ok(client.clone()),
                    ClientSource::Discovered {
                        http,
                        issuer,
                        credentials,
                    } => Ok(OAuthClient::new(
                        http.clone(),
                        http.discover(issuer).await?,
                        credentials.clone(),
                    )),
                    ClientSource::Registered {
                        registry,
                        target,
                        profile,
                    } => {
                        let issuer = match target {
                            Target::Issuer(issuer) => issuer.clone(),
                            Target::Resource(resource) => registry
                                .dcr()
                                .find_resource(resource)
                                .await?
                                .authorization_servers
                                .into_iter()
                                .next()
                                .ok_or_else(|| Error::Protocol {
                                    backend: BACKEND,
                                    code: "invalid_metadata".into(),
                                    description: Some(format!(
                                        "`{resource}` names no authorization server"
                                    )),
                                })?,
                        };
                        let server = registry.dcr().discover(&issuer).await?;
                        let registered = registry.get_or_create(&issuer, profile).await?;
                        Ok(OAuthClient::new(
                            registry.dcr().http().clone(),
                            server,
                            credentials_of(registered.client_id, registered.client_secret),
                        ))
                    }
                }
            })
            .await
    }

    /// The authorize URL to send the user to, and what to keep for the callback; the preset's
    /// scopes, prompt, resources and parameters are in it.
    ///
    /// ```no_run
    /// # async fn example(provider: identity_oauth::Provider) -> Result<(), identity_core::Error> {
    /// let (url, pending) = provider.authorize("https://app.example.com/oauth/github/callback", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn authorize(
        &self,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Result<(Url, PendingAuthorization), Error> {
        self.authorize_scopes(redirect_uri, login_hint, None).await
    }

    /// Checks that a flow may ask for `asked`: each scope among [`Provider::allowed_scopes`]
    /// (the provider's scopes when those are not set), and the provider one that connects by
    /// OAuth at all.
    ///
    /// ```
    /// let github = identity_oauth::Provider::github("Iv1.0123", identity_core::Secret::new("s"))?
    ///     .allowed_scopes(["read:user", "repo"]);
    /// assert!(github.check_scopes(&["repo".to_owned()]).is_ok());
    /// assert!(github.check_scopes(&["admin:org".to_owned()]).unwrap_err().to_string().contains("admin:org"));
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn check_scopes(&self, asked: &[String]) -> Result<(), Error> {
        let access =
            self.oauth_access("an authorization flow for a provider that takes an API token")?;
        let allowed = access.allowed_scopes.as_ref().unwrap_or(&access.scopes);
        match asked.iter().find(|s| !allowed.contains(s)) {
            Some(refused) => Err(Error::InvalidArgument {
                argument: "scope",
                problem: format!(
                    "`{}` is not among the scopes this provider may ask for",
                    refused
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(64)
                        .collect::<String>()
                ),
            }),
            None => Ok(()),
        }
    }

    /// [`Provider::authorize`] asking for `scopes` instead of the provider's own, each of which
    /// must be among [`Provider::allowed_scopes`] (the provider's scopes when those are not
    /// set): a connect link cannot ask for more than the configuration allows.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let github = identity_oauth::Provider::github("Iv1.0123", identity_core::Secret::new("s"))?
    ///     .allowed_scopes(["read:user", "repo"]);
    /// let (url, _) = github.authorize_scopes("https://app.example.com/cb", None, Some(&["repo".to_owned()])).await?;
    /// assert!(url.query_pairs().any(|(k, v)| k == "scope" && v == "repo"));
    /// let refused = github.authorize_scopes("https://app.example.com/cb", None, Some(&["admin:org".to_owned()])).await;
    /// assert!(refused.unwrap_err().to_string().contains("admin:org"));
    /// # Ok::<(), identity_core::Error>(()) }).unwrap();
    /// ```
    pub async fn authorize_scopes(
        &self,
        redirect_uri: &str,
        login_hint: Option<&str>,
        scopes: Option<&[String]>,
    ) -> Result<(Url, PendingAuthorization), Error> {
        let access =
            self.oauth_access("an authorization flow for a provider that takes an API token")?;
        let scopes = match scopes {
            None => access.scopes.clone(),
            Some(asked) => {
                self.check_scopes(asked)?;
                asked.to_vec()
            }
        };
        let client = self.client().await?;
        let mut request =
            AuthorizationRequest::new(client.client_id(), redirect_uri).scopes(scopes);
        if let Some(prompt) = &access.prompt {
            request = request.prompt(prompt.clone());
        }
        if let Some(hint) = login_hint {
            request = request.login_hint(hint);
        }
        for resource in &access.resources {
            request = request.resource(resource.clone());
        }
        for (name, value) in &access.extra {
            request = request.extra(name.clone(), value.clone());
        }
        request.build(client.server())
    }

    /// Refreshes `tokens` with the provider's resources.
    ///
    /// ```no_run
    /// # async fn example(provider: identity_oauth::Provider, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// let fresh = provider.refresh(&tokens).await?;
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, Error> {
        let client = self.client().await?;
        client.refresh(tokens, self.resources()).await
    }

    /// Revokes `tokens` at the provider: `true` when revoked, `false` when the provider offers
    /// no way to (an API token is revoked by its owner, on the provider's site).
    ///
    /// ```no_run
    /// # async fn example(provider: identity_oauth::Provider, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// let revoked = provider.revoke(&tokens).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, tokens: &TokenSet) -> Result<bool, Error> {
        let Access::OAuth(access) = &self.access else {
            return Ok(false);
        };
        let client = self.client().await?;
        match &access.revocation {
            Revocation::Standard => match client.revoke(tokens).await {
                Ok(()) => Ok(true),
                Err(Error::NotSupported { .. }) => Ok(false),
                Err(other) => Err(other),
            },
            Revocation::GitHub(api) => revoke_at_github(client, api, tokens).await.map(|()| true),
        }
    }

    /// The user's account at the provider, read with `tokens` (OpenID userinfo, or GitHub's
    /// `GET /user`); `None` for an API token provider or a server without a userinfo endpoint.
    ///
    /// ```no_run
    /// # async fn example(provider: identity_oauth::Provider, tokens: identity_oauth::TokenSet) -> Result<(), identity_core::Error> {
    /// if let Some(account) = provider.account(&tokens).await? {
    ///     println!("connected as {:?}", account.login);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn account(&self, tokens: &TokenSet) -> Result<Option<Account>, Error> {
        let Access::OAuth(access) = &self.access else {
            return Ok(None);
        };
        let client = self.client().await?;
        match &access.account {
            AccountSource::UserInfo => match client.userinfo(&tokens.access_token).await {
                Ok(claims) => Ok(Some(Account::from_openid(&claims))),
                Err(Error::NotSupported { .. }) => Ok(None),
                Err(other) => Err(other),
            },
            AccountSource::GitHub(api) => github_user(client, api, &tokens.access_token)
                .await
                .map(|user| Some(Account::from_github(&user))),
        }
    }
}

pub(crate) fn invalid_url(what: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "invalid_metadata".into(),
        description: Some(format!("{what}: an endpoint is not a URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_github_preset_uses_githubs_endpoints_and_pkce() {
        let github = Provider::github("Iv1.abc", Secret::new("s")).unwrap();
        let (url, pending) = github
            .authorize(
                "https://app.example.com/oauth/github/callback",
                Some("octocat"),
            )
            .await
            .unwrap();
        assert!(
            url.as_str()
                .starts_with("https://github.com/login/oauth/authorize?")
        );
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let has = |k: &str, v: &str| query.iter().any(|(a, b)| a == k && b == v);
        assert!(has("code_challenge_method", "S256"));
        assert!(has("scope", "read:user"));
        assert!(has("login_hint", "octocat"));
        assert_eq!(pending.issuer, "https://github.com");
        assert_eq!(
            github
                .client()
                .await
                .unwrap()
                .server()
                .token_endpoint
                .as_ref()
                .unwrap()
                .as_str(),
            "https://github.com/login/oauth/access_token"
        );
    }

    #[test]
    fn api_token_providers_have_no_flows() {
        let kaggle = Provider::kaggle();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = runtime
            .block_on(kaggle.authorize("https://app/cb", None))
            .unwrap_err();
        assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
        let revoked = runtime
            .block_on(kaggle.revoke(&TokenSet::bearer(Secret::new("k"), None)))
            .unwrap();
        assert!(!revoked);
    }

    #[test]
    fn the_google_preset_asks_for_offline_access_with_consent() {
        let google = Provider::google("id", None).unwrap();
        let Access::OAuth(access) = &google.access else {
            panic!("google is OAuth");
        };
        assert_eq!(access.prompt.as_deref(), Some("consent"));
        assert!(
            access
                .extra
                .contains(&("access_type".into(), "offline".into()))
        );
        assert_eq!(access.scopes, ["openid", "email", "profile"]);
    }
}
