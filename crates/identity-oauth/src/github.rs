//! GitHub's own endpoints: it has no userinfo and no RFC 7009 revocation, so its preset reads the
//! account from its REST API and revokes through `DELETE /applications/{client_id}/token`.

use identity_core::{Error, Secret};
use identity_http::ClientAuth;
use serde_json::{Map, Value};
use url::Url;

use crate::BACKEND;
use crate::provider::invalid_url;
use crate::tokens::{OAuthClient, TokenSet};

fn github_endpoint(api: &Url, path: &str) -> Result<Url, Error> {
    let base = api.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}{path}")).map_err(|_| invalid_url("github"))
}

/// GitHub's API wants a `User-Agent` and its own media type.
fn github_request(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header(
            "user-agent",
            concat!("agent-identity/", env!("CARGO_PKG_VERSION")),
        )
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
}

pub(crate) async fn github_user(
    client: &OAuthClient,
    api: &Url,
    access_token: &Secret,
) -> Result<Map<String, Value>, Error> {
    let http = client.http();
    let request =
        github_request(http.request(reqwest::Method::GET, &github_endpoint(api, "/user")?))
            .bearer_auth(access_token.expose_secret());
    let answer = http.send(request, "github user").await?;
    crate::tokens::read_resource_answer(&answer, "github user")
}

/// GitHub has no RFC 7009 endpoint: an app deletes a token it issued with its own credentials.
pub(crate) async fn revoke_at_github(
    client: &OAuthClient,
    api: &Url,
    tokens: &TokenSet,
) -> Result<(), Error> {
    let path = format!(
        "/applications/{}/token",
        url::form_urlencoded::byte_serialize(client.client_id().as_bytes()).collect::<String>()
    );
    let credentials = client.credentials();
    if credentials.method() != ClientAuth::ClientSecretBasic {
        return Err(Error::NotSupported {
            operation: "GitHub revocation without the client secret",
            backend: BACKEND,
        });
    }
    let secret = credentials.secret().map(|s| s.expose_secret().to_owned());
    let http = client.http();
    let request =
        github_request(http.request(reqwest::Method::DELETE, &github_endpoint(api, &path)?))
            .basic_auth(client.client_id(), secret)
            .json(&serde_json::json!({"access_token": tokens.access_token.expose_secret()}));
    let answer = http.send(request, "github revocation").await?;
    match answer.status {
        // 404: GitHub no longer knows the token (already revoked or expired).
        204 | 404 => Ok(()),
        status @ (429 | 500..=599) => Err(Error::unavailable(
            BACKEND,
            format!("github revocation: answered {status}"),
        )),
        status => Err(Error::Protocol {
            backend: BACKEND,
            code: "revocation_refused".into(),
            description: Some(format!("github revocation answered {status}")),
        }),
    }
}
