//! Finding an authorization server and what it offers: RFC 8414 (with path insertion), OpenID
//! discovery, RFC 9728 protected-resource metadata.

use identity_core::Error;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::BACKEND;
use crate::client::HttpClient;
use crate::policy::OutboundPolicy;

/// An authorization server's metadata (RFC 8414), every endpoint checked against the policy.
///
/// ```
/// # use identity_http::AuthorizationServerMetadata;
/// let json = serde_json::json!({"issuer": "https://as.example.com",
///     "token_endpoint": "https://as.example.com/token",
///     "registration_endpoint": "https://as.example.com/reg"});
/// let policy = identity_http::OutboundPolicy::default();
/// let metadata = AuthorizationServerMetadata::from_json(json, "https://as.example.com", &policy)?;
/// assert!(metadata.supports_registration());
/// # Ok::<(), identity_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier, equal to the one asked for.
    pub issuer: String,
    /// Where to send the user to authorize.
    pub authorization_endpoint: Option<Url>,
    /// Where to get tokens.
    pub token_endpoint: Option<Url>,
    /// Where to register clients (RFC 7591), when the server allows it.
    pub registration_endpoint: Option<Url>,
    /// Where to revoke tokens (RFC 7009).
    pub revocation_endpoint: Option<Url>,
    /// The scopes the server knows.
    pub scopes_supported: Vec<String>,
    /// The grant types the server accepts.
    pub grant_types_supported: Vec<String>,
    /// How clients may authenticate at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The PKCE methods the server checks (`S256`).
    pub code_challenge_methods_supported: Vec<String>,
    /// Where to read claims about the user (OpenID Connect).
    pub userinfo_endpoint: Option<Url>,
    /// Whether the server accepts client ids that are URLs of metadata documents (CIMD).
    pub client_id_metadata_document_supported: bool,
    /// Where to introspect tokens (RFC 7662).
    pub introspection_endpoint: Option<Url>,
    /// Where the server's signing keys are (ID tokens are verified with them).
    pub jwks_uri: Option<Url>,
    /// Whether the server puts `iss` in its authorization responses (RFC 9207); a callback
    /// without it is then refused.
    pub authorization_response_iss_parameter_supported: bool,
    /// The algorithms the server signs ID tokens with.
    pub id_token_signing_alg_values_supported: Vec<String>,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    registration_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
    #[serde(default)]
    grant_types_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    client_id_metadata_document_supported: bool,
    introspection_endpoint: Option<String>,
    jwks_uri: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

/// An error for metadata (or a registration answer) that breaks its specification: `what` names
/// the document, `problem` says what is wrong.
///
/// ```
/// let err = identity_http::invalid_metadata("metadata of `https://as.example.com`", "has no `issuer`");
/// assert!(err.to_string().contains("has no `issuer`"));
/// ```
pub fn invalid_metadata(what: &str, problem: &str) -> Error {
    Error::Protocol {
        backend: BACKEND,
        code: "invalid_metadata".into(),
        description: Some(format!("{what}: {problem}")),
    }
}

impl AuthorizationServerMetadata {
    /// Reads metadata served for `issuer`: the `issuer` in it must be exactly `issuer` (a server
    /// cannot speak for another), and every endpoint must pass `policy`.
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, OutboundPolicy};
    /// let json = serde_json::json!({"issuer": "https://evil.example.com"});
    /// let err = AuthorizationServerMetadata::from_json(json, "https://as.example.com", &OutboundPolicy::default()).unwrap_err();
    /// assert!(err.to_string().contains("issuer"));
    /// ```
    pub fn from_json(json: Value, issuer: &str, policy: &OutboundPolicy) -> Result<Self, Error> {
        let what = format!("metadata of `{issuer}`");
        let raw: RawMetadata = serde_json::from_value(json)
            .map_err(|err| invalid_metadata(&what, &format!("not RFC 8414 metadata: {err}")))?;
        match raw.issuer.as_deref() {
            Some(found) if found == issuer => {}
            Some(found) => {
                return Err(invalid_metadata(
                    &what,
                    &format!("names issuer `{found}`, not the one asked for"),
                ));
            }
            None => return Err(invalid_metadata(&what, "has no `issuer`")),
        }
        let endpoint = |value: Option<String>, field: &str| {
            value.map(|text| policy.check_url(&text, field)).transpose()
        };
        Ok(Self {
            issuer: issuer.to_owned(),
            authorization_endpoint: endpoint(raw.authorization_endpoint, "authorization_endpoint")?,
            token_endpoint: endpoint(raw.token_endpoint, "token_endpoint")?,
            registration_endpoint: endpoint(raw.registration_endpoint, "registration_endpoint")?,
            revocation_endpoint: endpoint(raw.revocation_endpoint, "revocation_endpoint")?,
            scopes_supported: raw.scopes_supported,
            grant_types_supported: raw.grant_types_supported,
            token_endpoint_auth_methods_supported: raw.token_endpoint_auth_methods_supported,
            code_challenge_methods_supported: raw.code_challenge_methods_supported,
            userinfo_endpoint: endpoint(raw.userinfo_endpoint, "userinfo_endpoint")?,
            client_id_metadata_document_supported: raw.client_id_metadata_document_supported,
            introspection_endpoint: endpoint(raw.introspection_endpoint, "introspection_endpoint")?,
            jwks_uri: endpoint(raw.jwks_uri, "jwks_uri")?,
            authorization_response_iss_parameter_supported: raw
                .authorization_response_iss_parameter_supported,
            id_token_signing_alg_values_supported: raw.id_token_signing_alg_values_supported,
        })
    }

    /// True when the server has a registration endpoint.
    ///
    /// ```
    /// # use identity_http::{AuthorizationServerMetadata, OutboundPolicy};
    /// let json = serde_json::json!({"issuer": "https://as.example.com"});
    /// let m = AuthorizationServerMetadata::from_json(json, "https://as.example.com", &OutboundPolicy::default())?;
    /// assert!(!m.supports_registration());
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn supports_registration(&self) -> bool {
        self.registration_endpoint.is_some()
    }
}

/// A protected resource's metadata (RFC 9728).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier, equal to the one asked for.
    pub resource: String,
    /// The issuers of the authorization servers it trusts.
    pub authorization_servers: Vec<String>,
    /// The scopes it understands.
    pub scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct RawResourceMetadata {
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// The well-known URL of `suffix` for `identifier`, with RFC 8414's path insertion: the
/// well-known segment goes between the host and the identifier's path.
fn well_known(identifier: &Url, suffix: &str) -> Url {
    let mut url = identifier.clone();
    let path = identifier.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/{suffix}{path}"));
    url.set_query(None);
    url
}

/// The `resource_metadata` URL of a `WWW-Authenticate: Bearer ...` challenge (RFC 9728 §5.1),
/// if it has one.
///
/// ```
/// let header = r#"Bearer realm="mcp", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource", error="invalid_token""#;
/// assert_eq!(
///     identity_http::resource_metadata_from_challenge(header).as_deref(),
///     Some("https://mcp.example.com/.well-known/oauth-protected-resource")
/// );
/// assert!(identity_http::resource_metadata_from_challenge("Basic realm=x").is_none());
/// ```
pub fn resource_metadata_from_challenge(header: &str) -> Option<String> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    // auth-params: name=token or name="quoted string", separated by commas (RFC 9110 §11.2).
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(index + 1);
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if name.eq_ignore_ascii_case("resource_metadata") {
            return Some(value);
        }
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    None
}

impl HttpClient {
    /// The metadata of the authorization server `issuer`: RFC 8414 first (the well-known
    /// segment inserted before the issuer's path), then OpenID discovery
    /// (`<issuer>/.well-known/openid-configuration`). The `issuer` in the answer must equal
    /// `issuer` character for character, and every endpoint in it pass the policy. A 404 moves
    /// on to the next address; a hostile answer (too large, a redirect, unreachable) ends
    /// discovery.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient) -> Result<(), identity_core::Error> {
    /// let server = http.discover("https://login.example.com").await?;
    /// # Ok(()) }
    /// ```
    pub async fn discover(&self, issuer: &str) -> Result<AuthorizationServerMetadata, Error> {
        let policy = self.policy();
        let issuer_url = policy.check_url(issuer, "issuer")?;
        if issuer_url.query().is_some() {
            return Err(invalid_metadata(issuer, "an issuer has no query"));
        }
        let oauth = well_known(&issuer_url, "oauth-authorization-server");
        let openid = {
            let mut url = issuer_url.clone();
            let path = issuer_url.path().trim_end_matches('/');
            url.set_path(&format!("{path}/.well-known/openid-configuration"));
            url
        };
        let mut last = None;
        for url in [oauth, openid] {
            let what = format!("discovery at {url}");
            match self.get_json(&url, &what).await {
                Ok(answer) if answer.status == 200 => {
                    return AuthorizationServerMetadata::from_json(
                        serde_json::Value::Object(answer.json_object(&what)?),
                        issuer,
                        policy,
                    );
                }
                Ok(answer) => {
                    last = Some(invalid_metadata(
                        &what,
                        &format!("answered {}", answer.status),
                    ));
                }
                // A hostile answer (too large, a redirect, unreachable) ends discovery.
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| invalid_metadata(issuer, "no metadata found")))
    }

    /// The metadata of protected resource `resource` as a client meets it (RFC 9728 §5, the
    /// MCP authorization flow): a request to the resource without a token, whose 401 names
    /// the metadata's URL in `WWW-Authenticate: Bearer resource_metadata=…`; the well-known URL
    /// when the answer names none (or the probe fails). The metadata is checked as by
    /// [`HttpClient::discover_resource`], its URL against the policy.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient) -> Result<(), identity_core::Error> {
    /// let resource = http.find_resource("https://mcp.example.com/mcp").await?;
    /// let issuer = &resource.authorization_servers[0];
    /// # Ok(()) }
    /// ```
    pub async fn find_resource(&self, resource: &str) -> Result<ProtectedResourceMetadata, Error> {
        let url = self.policy().check_url(resource, "resource")?;
        let named = match self
            .stream(self.request(reqwest::Method::GET, &url), "resource probe")
            .await
        {
            Ok(answer) if answer.status() == reqwest::StatusCode::UNAUTHORIZED => answer
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .find_map(resource_metadata_from_challenge),
            _ => None,
        };
        self.discover_resource(resource, named.as_deref()).await
    }

    /// The metadata of protected resource `resource` (RFC 9728 §3), from its well-known URL or
    /// from `metadata_url` (the `resource_metadata` of a 401's challenge). The `resource` in it
    /// must equal `resource`, and every authorization server it names pass the policy.
    ///
    /// ```no_run
    /// # async fn example(http: identity_http::HttpClient) -> Result<(), identity_core::Error> {
    /// let resource = http.discover_resource("https://mcp.example.com/mcp", None).await?;
    /// let issuer = &resource.authorization_servers[0];
    /// # Ok(()) }
    /// ```
    pub async fn discover_resource(
        &self,
        resource: &str,
        metadata_url: Option<&str>,
    ) -> Result<ProtectedResourceMetadata, Error> {
        let policy = self.policy();
        let resource_url = policy.check_url(resource, "resource")?;
        let url = match metadata_url {
            Some(text) => policy.check_url(text, "resource_metadata")?,
            None => well_known(&resource_url, "oauth-protected-resource"),
        };
        let what = format!("resource metadata at {url}");
        let answer = self.get_json(&url, &what).await?;
        if answer.status != 200 {
            return Err(invalid_metadata(
                &what,
                &format!("answered {}", answer.status),
            ));
        }
        let raw: RawResourceMetadata =
            serde_json::from_value(serde_json::Value::Object(answer.json_object(&what)?))
                .map_err(|err| invalid_metadata(&what, &format!("not RFC 9728 metadata: {err}")))?;
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        match raw.resource.as_deref() {
            Some(found) if same(found, resource) => {}
            Some(found) => {
                return Err(invalid_metadata(
                    &what,
                    &format!("names resource `{found}`, not the one asked for"),
                ));
            }
            None => return Err(invalid_metadata(&what, "has no `resource`")),
        }
        for server in &raw.authorization_servers {
            policy.check_url(server, "authorization_servers")?;
        }
        Ok(ProtectedResourceMetadata {
            resource: resource.to_owned(),
            authorization_servers: raw.authorization_servers,
            scopes_supported: raw.scopes_supported,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_insert_the_path() {
        let with_path = Url::parse("https://as.example.com/tenant/1").unwrap();
        assert_eq!(
            well_known(&with_path, "oauth-authorization-server").as_str(),
            "https://as.example.com/.well-known/oauth-authorization-server/tenant/1"
        );
        let bare = Url::parse("https://as.example.com/").unwrap();
        assert_eq!(
            well_known(&bare, "oauth-protected-resource").as_str(),
            "https://as.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn challenges_are_parsed_with_quoting() {
        let header = r#"Bearer error="invalid_token", error_description="a \"quoted\" word, and a comma", resource_metadata="https://r.example/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            resource_metadata_from_challenge(header).as_deref(),
            Some("https://r.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_from_challenge("bearer resource_metadata=https://r.example/m")
                .as_deref(),
            Some("https://r.example/m")
        );
        assert!(resource_metadata_from_challenge(r#"Bearer error="x""#).is_none());
        assert!(
            resource_metadata_from_challenge(r#"Bearer resource_metadata="unterminated"#).is_none()
        );
    }
}
