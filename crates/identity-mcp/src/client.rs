//! [`AuthorizedClient`]: rmcp's streamable HTTP client with the user's token on every request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use identity_core::Error;
use identity_http::HttpClient;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};

use crate::McpAuthorization;

/// Why a call through an [`AuthorizedClient`] failed, besides the protocol's own errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizedError {
    /// The HTTP exchange failed (connection, timeout, body).
    #[error("the MCP server could not be reached: {0}")]
    Http(#[source] reqwest::Error),
    /// No token could be had: [`Error::ConsentRequired`] when the user must connect (again),
    /// or the token store's failure.
    #[error(transparent)]
    Identity(Error),
}

type Failure = StreamableHttpError<AuthorizedError>;

/// An rmcp streamable HTTP client whose every request carries the access token of one user's
/// connection ([`McpAuthorization`]): refreshed when it nears expiry; refreshed at once, and
/// the request sent again once, when the server answers 401; a call that still cannot be
/// authorized fails with [`AuthorizedError::Identity`] holding [`Error::ConsentRequired`].
/// Requests go out through the workspace's outbound client ([`HttpClient`]): its address
/// policy, timeouts, and no redirects.
///
/// ```no_run
/// # async fn example(authorization: identity_mcp::McpAuthorization, http: identity_http::HttpClient) -> Result<(), Box<dyn std::error::Error>> {
/// use rmcp::ServiceExt;
/// use rmcp::transport::StreamableHttpClientTransport;
/// use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
///
/// let client = identity_mcp::AuthorizedClient::new(authorization, &http);
/// let transport = StreamableHttpClientTransport::with_client(
///     client,
///     StreamableHttpClientTransportConfig::with_uri("https://crm.example.com/mcp"),
/// );
/// let session = ().serve(transport).await?;
/// let tools = session.list_all_tools().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizedClient {
    http: HttpClient,
    authorization: Arc<McpAuthorization>,
}

impl AuthorizedClient {
    /// A client presenting `authorization`'s token, sending through `http`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # fn example(authorization: identity_mcp::McpAuthorization) -> Result<(), identity_core::Error> {
    /// let http = identity_http::HttpClient::new(identity_http::OutboundPolicy::default())?;
    /// let client = identity_mcp::AuthorizedClient::new(authorization, &http);
    /// # Ok(()) }
    /// ```
    pub fn new(authorization: McpAuthorization, http: &HttpClient) -> Self {
        Self {
            http: http.clone(),
            authorization: Arc::new(authorization),
        }
    }

    /// The connection whose token it presents.
    pub fn authorization(&self) -> &McpAuthorization {
        &self.authorization
    }

    /// Sends with the token: `send` gets the token to present and makes the request (through
    /// the outbound client's `reqwest::Client`). The URL is checked against the policy first (a literal private
    /// address never reaches the resolver's check). After a 401 the token is marked refused
    /// and `send` runs once more with a refreshed one; a second 401 means the user's consent
    /// is needed.
    async fn authorized<T, F, Fut>(&self, uri: &str, send: F) -> Result<T, Failure>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<reqwest::Error>>>,
    {
        let identity = |err| StreamableHttpError::Client(AuthorizedError::Identity(err));
        self.http
            .policy()
            .check_url(uri, "MCP server")
            .map_err(identity)?;
        let mut refused_once = false;
        loop {
            let token = self.authorization.access_token().await.map_err(identity)?;
            match send(token.expose_secret().to_owned()).await {
                Err(StreamableHttpError::AuthRequired(_)) if !refused_once => {
                    refused_once = true;
                    self.authorization.refused(&token).await.map_err(identity)?;
                }
                Err(StreamableHttpError::AuthRequired(_)) => {
                    return Err(identity(self.authorization.consent_required(
                        "the MCP server refused a freshly refreshed token",
                    )));
                }
                sent => return sent.map_err(converted),
            }
        }
    }
}

/// The reqwest client's failure as this client's: its own error wrapped, the protocol's
/// errors kept.
fn converted(err: StreamableHttpError<reqwest::Error>) -> Failure {
    match err {
        StreamableHttpError::Client(err) => StreamableHttpError::Client(AuthorizedError::Http(err)),
        StreamableHttpError::Sse(err) => StreamableHttpError::Sse(err),
        StreamableHttpError::Io(err) => StreamableHttpError::Io(err),
        StreamableHttpError::HttpStatus(err) => StreamableHttpError::HttpStatus(err),
        StreamableHttpError::UnexpectedEndOfStream => StreamableHttpError::UnexpectedEndOfStream,
        StreamableHttpError::UnexpectedServerResponse(text) => {
            StreamableHttpError::UnexpectedServerResponse(text)
        }
        StreamableHttpError::UnexpectedContentType(kind) => {
            StreamableHttpError::UnexpectedContentType(kind)
        }
        StreamableHttpError::ServerDoesNotSupportSse => {
            StreamableHttpError::ServerDoesNotSupportSse
        }
        StreamableHttpError::ServerDoesNotSupportDeleteSession => {
            StreamableHttpError::ServerDoesNotSupportDeleteSession
        }
        StreamableHttpError::Deserialize(err) => StreamableHttpError::Deserialize(err),
        StreamableHttpError::AuthRequired(err) => StreamableHttpError::AuthRequired(err),
        StreamableHttpError::InsufficientScope(err) => StreamableHttpError::InsufficientScope(err),
        // Variants added later keep their text.
        other => StreamableHttpError::UnexpectedServerResponse(Cow::Owned(other.to_string())),
    }
}

impl StreamableHttpClient for AuthorizedClient {
    type Error = AuthorizedError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let http = self.http.reqwest();
        self.authorized(&uri, |token| {
            http.post_message(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                Some(token),
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Failure> {
        let http = self.http.reqwest();
        self.authorized(&uri, |token| {
            http.delete_session(
                uri.clone(),
                session_id.clone(),
                Some(token),
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<sse_stream::Sse, SseError>>, Failure> {
        let http = self.http.reqwest();
        self.authorized(&uri, |token| {
            http.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                Some(token),
                custom_headers.clone(),
            )
        })
        .await
    }
}
