//! The HTTP client for JSON calls to platform APIs, the path every reply
//! takes: hyper's pooled client, used directly. reqwest (kept for uploads
//! and long polls) wraps the same client in redirect, retry and URL layers
//! that parse each request's URL twice more, even with redirects off; perf
//! put those layers at a sixth of the daemon's send thread.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Request, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = HttpConnector;

/// A platform's answer to one call.
#[derive(Debug)]
pub struct JsonResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// The request never reached the platform: safe to send again.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The request may have reached the platform.
    #[error("{0}")]
    InFlight(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The URL or a header could not form a request; nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl CallFailure {
    /// Whether the platform may have received the request.
    pub fn in_doubt(&self) -> bool {
        matches!(self, Self::InFlight(_) | Self::TimedOut(_))
    }
}

/// Pooled keep-alive connections per host, HTTPS through rustls with the
/// webpki roots (as the reqwest client elsewhere), HTTP/1.1. When the
/// environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
/// any case), calls go through the reqwest client instead, which honours it.
#[derive(Clone)]
pub struct JsonClient {
    backend: Backend,
    timeout: Duration,
}

#[derive(Clone)]
enum Backend {
    Direct(Client<Connector, Full<Bytes>>),
    Proxied(reqwest::Client),
}

/// The variables reqwest reads for a system proxy.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether `lookup` (the environment) names a proxy.
fn proxy_configured(lookup: impl Fn(&str) -> Option<String>) -> bool {
    PROXY_VARIABLES
        .iter()
        .any(|name| lookup(name).is_some_and(|value| !value.trim().is_empty()))
}

impl JsonClient {
    /// `proxied` is the client to use when the environment names a proxy.
    pub fn new(timeout: Duration, proxied: reqwest::Client) -> Self {
        if proxy_configured(|name| std::env::var(name).ok()) {
            Self::proxied(timeout, proxied)
        } else {
            Self::direct(timeout)
        }
    }

    fn direct(timeout: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new())
            // No idle timeout: hyper arms its pool reaper timer only when
            // there is one, and an idle daemon must not wake.
            .pool_idle_timeout(None)
            .build(connector());
        Self {
            backend: Backend::Direct(client),
            timeout,
        }
    }

    fn proxied(timeout: Duration, client: reqwest::Client) -> Self {
        Self {
            backend: Backend::Proxied(client),
            timeout,
        }
    }

    /// Sends `body` as `application/json`, with `authorization` when given,
    /// and reads the whole answer.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<JsonResponse, CallFailure> {
        let invalid = |detail: String| CallFailure::Invalid(detail);
        let authorization = authorization
            .map(|text| {
                let mut value = HeaderValue::from_str(text)
                    .map_err(|_| invalid("the authorization header is not valid text".into()))?;
                // Kept out of any debug output of the request.
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        let client = match &self.backend {
            Backend::Direct(client) => client,
            Backend::Proxied(client) => {
                return self
                    .call_proxied(client, method, url, authorization, body)
                    .await;
            }
        };
        let uri: Uri = url.parse().map_err(|err| invalid(format!("{err}")))?;
        let mut request = Request::builder().method(method).uri(uri).header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| invalid(err.to_string()))?;
        let exchange = async {
            let response = client.request(request).await.map_err(|err| {
                if err.is_connect() {
                    CallFailure::Connect(error_chain(&err))
                } else {
                    CallFailure::InFlight(error_chain(&err))
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|err| CallFailure::InFlight(error_chain(&err)))?
                .to_bytes();
            Ok(JsonResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallFailure::TimedOut(self.timeout))?
    }

    async fn call_proxied(
        &self,
        client: &reqwest::Client,
        method: Method,
        url: &str,
        authorization: Option<HeaderValue>,
        body: Vec<u8>,
    ) -> Result<JsonResponse, CallFailure> {
        let mut request = client
            .request(method, url)
            .timeout(self.timeout)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        // Without the URL: Telegram's carries the bot token.
        let failed = |err: reqwest::Error| {
            let (builder, connect, timeout) =
                (err.is_builder(), err.is_connect(), err.is_timeout());
            let detail = error_chain(&err.without_url());
            if builder {
                CallFailure::Invalid(detail)
            } else if connect {
                CallFailure::Connect(detail)
            } else if timeout {
                CallFailure::TimedOut(self.timeout)
            } else {
                CallFailure::InFlight(detail)
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(failed)?;
        Ok(JsonResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(feature = "rustls")]
fn connector() -> Connector {
    let mut http = HttpConnector::new();
    // The TLS layer takes https URLs; plain http stays allowed for a
    // loopback or LAN API base (a local homeserver, a test fake).
    http.enforce_http(false);
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[cfg(not(feature = "rustls"))]
fn connector() -> Connector {
    HttpConnector::new()
}

/// The error and its causes on one line (hyper's top error alone says
/// only "client error (Connect)").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Json;
    use axum::routing::put;
    use serde_json::{Value, json};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Both ways a call can go: hyper directly, and reqwest (as with a
    /// proxy; none here, so the test runs where one is set too).
    fn both(timeout: Duration) -> [JsonClient; 2] {
        let reqwest = reqwest::Client::builder().no_proxy().build().unwrap();
        [
            JsonClient::direct(timeout),
            JsonClient::proxied(timeout, reqwest),
        ]
    }

    #[test]
    fn any_proxy_variable_sends_calls_through_reqwest() {
        assert!(!proxy_configured(|_| None));
        assert!(!proxy_configured(|_| Some("  ".into())));
        for name in PROXY_VARIABLES {
            let set = |asked: &str| (asked == name).then(|| "http://proxy:3128".to_owned());
            assert!(proxy_configured(set), "{name}");
        }
    }

    async fn listener() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        (listener, base)
    }

    #[tokio::test]
    async fn a_call_sends_method_json_and_authorization_and_reads_the_answer() {
        let (listener, base) = listener().await;
        let app = axum::Router::new().route(
            "/rooms/{room}/send",
            put(|headers: HeaderMap, Json(body): Json<Value>| async move {
                let seen = json!({
                    "content_type": headers["content-type"].to_str().unwrap(),
                    "authorization": headers["authorization"].to_str().unwrap(),
                    "body": body,
                });
                ([("retry-after", "3")], Json(seen))
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        for client in both(Duration::from_secs(5)) {
            let answer = client
                .call(
                    Method::PUT,
                    &format!("{base}/rooms/%21a%3Ab/send"),
                    Some("Bearer tok"),
                    br#"{"body":"hi"}"#.to_vec(),
                )
                .await
                .unwrap();
            assert_eq!(answer.status, 200);
            assert_eq!(answer.headers["retry-after"], "3");
            let seen: Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(
                seen,
                json!({"content_type": "application/json", "authorization": "Bearer tok", "body": {"body": "hi"}})
            );
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_in_doubt_and_names_no_url() {
        let (listener, base) = listener().await;
        drop(listener);
        for client in both(Duration::from_secs(5)) {
            let failure = client
                .call(
                    Method::POST,
                    &format!("{base}/bot1:SECRET/sendMessage"),
                    None,
                    b"{}".to_vec(),
                )
                .await
                .unwrap_err();
            assert!(matches!(failure, CallFailure::Connect(_)), "{failure:?}");
            assert!(!failure.in_doubt());
            assert!(!failure.to_string().contains("SECRET"), "{failure}");
        }
    }

    #[tokio::test]
    async fn a_connection_closed_after_the_request_is_in_doubt() {
        let (listener, base) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                // Closed without an answer: the platform may have acted on it.
            }
        });
        for client in both(Duration::from_secs(5)) {
            let failure = client
                .call(Method::POST, &format!("{base}/x"), None, b"{}".to_vec())
                .await
                .unwrap_err();
            assert!(matches!(failure, CallFailure::InFlight(_)), "{failure:?}");
            assert!(failure.in_doubt());
        }
    }

    #[tokio::test]
    async fn a_call_with_no_answer_times_out_in_doubt() {
        let (listener, base) = listener().await;
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        for client in both(Duration::from_millis(200)) {
            let failure = client
                .call(Method::POST, &format!("{base}/x"), None, b"{}".to_vec())
                .await
                .unwrap_err();
            assert!(matches!(failure, CallFailure::TimedOut(_)), "{failure:?}");
            assert!(failure.in_doubt());
        }
        held.abort();
    }

    #[tokio::test]
    async fn a_malformed_url_or_header_sends_nothing() {
        for client in both(Duration::from_secs(5)) {
            let bad_url = client
                .call(Method::POST, "http://exa mple/", None, Vec::new())
                .await
                .unwrap_err();
            assert!(matches!(bad_url, CallFailure::Invalid(_)), "{bad_url:?}");
            let bad_header = client
                .call(
                    Method::POST,
                    "http://127.0.0.1:9/",
                    Some("Bearer a\nb"),
                    Vec::new(),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(bad_header, CallFailure::Invalid(_)),
                "{bad_header:?}"
            );
            assert!(!bad_header.in_doubt());
        }
    }

    #[cfg(feature = "rustls")]
    #[tokio::test]
    async fn an_https_url_speaks_tls_and_a_failed_handshake_is_not_in_doubt() {
        let (listener, base) = listener().await;
        let app = axum::Router::new().route("/x", axum::routing::post(|| async { "plain" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = base.replacen("http://", "https://", 1) + "/x";
        for client in both(Duration::from_secs(5)) {
            let failure = client
                .call(Method::POST, &url, None, b"{}".to_vec())
                .await
                .unwrap_err();
            // A plain HTTP server cannot complete the handshake: nothing was sent.
            assert!(matches!(failure, CallFailure::Connect(_)), "{failure:?}");
            assert!(!failure.in_doubt());
            // And the same server answers over plain http.
            let answer = client
                .call(Method::POST, &format!("{base}/x"), None, b"{}".to_vec())
                .await
                .unwrap();
            assert_eq!(&answer.body[..], b"plain");
        }
    }
}
