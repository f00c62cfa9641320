//! `POST /auth/token`: OAuth 2.0 client credentials (RFC 6749 §4.4), errors per §5.2.
//!
//! Errors here use OAuth's own shape (`{"error","error_description"}`), not the API
//! envelope, so that off-the-shelf OAuth2 client libraries understand them.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{Authenticator, ClientAuthError};
use crate::http::{RETRY_AFTER_S, StorageFailure};

/// Unknown parameters (such as `scope`: an agent has exactly one) are ignored. No
/// `Debug`: it holds the client secret.
#[derive(Default, Deserialize, utoipa::ToSchema)]
struct TokenRequest {
    /// `client_credentials`.
    grant_type: Option<String>,
    /// With `client_secret`, instead of HTTP Basic.
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TokenResponse {
    /// A JWT for `GET /agents`.
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Seconds.
    expires_in: u64,
}

/// RFC 6749 §5.2.
#[derive(Serialize, utoipa::ToSchema)]
struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`,
    /// `temporarily_unavailable`, `server_error`.
    error: &'static str,
    error_description: String,
}

pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error,
            error_description: self.description,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        no_store(h);
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"nexus\""),
            );
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl From<ClientAuthError> for OAuthError {
    fn from(e: ClientAuthError) -> Self {
        match e {
            ClientAuthError::InvalidClient => OAuthError::invalid_client(),
            // RFC 6749 has no code for "suspended"; invalid_client is what a client
            // library treats as "do not retry with these credentials".
            ClientAuthError::TenantSuspended => OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the agent's tenant is suspended",
            ),
            ClientAuthError::Throttled(wait) => OAuthError {
                retry_after: Some(wait.as_secs().max(1)),
                ..OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    e.to_string(),
                )
            },
            ClientAuthError::Busy | ClientAuthError::TimedOut(_) => OAuthError {
                retry_after: Some(RETRY_AFTER_S),
                ..OAuthError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    e.to_string(),
                )
            },
            ClientAuthError::Store(err) => match StorageFailure::from(&err) {
                StorageFailure::Unavailable => OAuthError {
                    retry_after: Some(RETRY_AFTER_S),
                    ..OAuthError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "storage is unavailable",
                    )
                },
                _ => OAuthError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error",
                ),
            },
        }
    }
}

/// OAuth 2.0 client credentials (RFC 6749 §4.4): an agent's id and secret, by HTTP
/// Basic or in the body (form or JSON), for an access token.
#[utoipa::path(
    post,
    path = "/auth/token",
    tag = "node",
    security((), ("client_basic" = [])),
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 400, description = "Malformed request or grant type", body = OAuthErrorBody),
        (status = 401, description = "Unknown client or wrong secret (`invalid_client`)", body = OAuthErrorBody),
        (status = 429, description = "Too many failures; see `Retry-After`", body = OAuthErrorBody),
        (status = 503, description = "Busy or storage unavailable; see `Retry-After`", body = OAuthErrorBody),
    )
)]
pub async fn token_endpoint(
    State(auth): State<Arc<Authenticator>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue(&auth, peer.ip(), &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn issue(
    auth: &Authenticator,
    peer: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let (client_id, secret) = client_credentials(headers, body)?;
    let token = auth
        .issue_for_client(&client_id, &secret, Some(peer))
        .await?;
    let body = TokenResponse {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
    };
    let mut resp = axum::Json(body).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

/// The client's id and secret from a token request (body and `Authorization`), or the
/// OAuth error to answer; no I/O, so the fuzz targets drive it as is (`crate::fuzzing`).
pub(crate) fn client_credentials(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String), OAuthError> {
    let req = parse_body(headers, body)?;
    match req.grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            ));
        }
    }
    let basic = basic_credentials(headers)?;
    match (basic, req.client_id, req.client_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not both Basic and body credentials",
        )),
        (Some(creds), None, None) => Ok(creds),
        (None, Some(id), Some(secret)) => Ok((id, secret)),
        (None, _, _) => Err(OAuthError::invalid_client()),
    }
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body)
            .map_err(|e| OAuthError::invalid_request(format!("malformed form body: {e}"))),
        "application/json" => serde_json::from_slice(body)
            .map_err(|e| OAuthError::invalid_request(format!("malformed JSON body: {e}"))),
        _ => Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// HTTP Basic client credentials; each half is form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    Ok(Some((form_decode(id)?, form_decode(secret)?)))
}

fn form_decode(s: &str) -> Result<String, OAuthError> {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| OAuthError::invalid_client())
}
