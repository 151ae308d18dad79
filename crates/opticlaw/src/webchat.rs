//! The web chat: one small page, served on the daemon's loopback address,
//! so a new user can talk to the assistant with nothing but a browser.
//!
//! The page (`assets/chat.{html,css,js}`, embedded in the binary) is public
//! like `/healthz`: it holds no data. It reads the API token from the URL
//! fragment (`/chat#token=…`, which browsers never send to the server, so it
//! stays out of logs and `Referer`), then talks to the same authenticated
//! local API as `opticlaw chat`: `POST /v1/local/messages` to send and
//! `GET /v1/local/stream` to receive. The stream is read with `fetch()`
//! rather than `EventSource`, which cannot send an `Authorization` header,
//! so no token ever travels in a query string.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

const PAGE: &str = include_str!("../assets/chat.html");
const STYLE: &str = include_str!("../assets/chat.css");
const SCRIPT: &str = include_str!("../assets/chat.js");

/// Only the page's own script, style and API; no inline code, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /chat` (and `/chat/`) and the page's two assets. Stateless, so it
/// merges into a router of any state: `router.merge(webchat::routes())`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/chat", get(page))
        .route("/chat/", get(page))
        .route("/chat/chat.css", get(style))
        .route("/chat/chat.js", get(script))
}

type Headers = [(HeaderName, HeaderValue); 5];

fn headers(content_type: &'static str) -> Headers {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// The chat page.
pub async fn page() -> impl IntoResponse {
    (headers("text/html; charset=utf-8"), PAGE)
}

async fn style() -> impl IntoResponse {
    (headers("text/css; charset=utf-8"), STYLE)
}

async fn script() -> impl IntoResponse {
    (headers("text/javascript; charset=utf-8"), SCRIPT)
}

/// The link `opticlaw serve` prints: the page on the address the daemon
/// listens on (loopback when it listens on every interface), with the token
/// in the fragment.
pub fn chat_url(local: SocketAddr, token: &str) -> String {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, local.port());
    format!("http://{addr}/chat#token={}", fragment_escape(token))
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn fragment_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_has_the_token_in_the_fragment_on_loopback() {
        let url = chat_url("127.0.0.1:7420".parse().unwrap(), "ab12");
        assert_eq!(url, "http://127.0.0.1:7420/chat#token=ab12");
        let any = chat_url("0.0.0.0:9".parse().unwrap(), "a b+/");
        assert_eq!(any, "http://127.0.0.1:9/chat#token=a%20b%2B%2F");
        let v6 = chat_url("[::]:9".parse().unwrap(), "t");
        assert_eq!(v6, "http://[::1]:9/chat#token=t");
    }

    #[test]
    fn page_is_small_and_self_contained() {
        let total = PAGE.len() + STYLE.len() + SCRIPT.len();
        assert!(total < 15 * 1024, "the page is {total} bytes");
        // No external resources: nothing fetched from another origin.
        for asset in [PAGE, STYLE] {
            assert!(!asset.contains("http:") && !asset.contains("https:") && !asset.contains("//"));
        }
        assert!(!SCRIPT.contains("fetch('http") && !SCRIPT.contains("import"));
        // CSP-friendly: no inline handlers, styles or scripts.
        for inline in [
            "onclick",
            "onload",
            "onsubmit",
            "onkeydown",
            "oninput",
            "<style",
            "style=",
        ] {
            assert!(!PAGE.contains(inline), "inline `{inline}` in the page");
        }
        assert!(PAGE.contains(r#"<script src="/chat/chat.js" defer></script>"#));
        assert_eq!(PAGE.matches("<script").count(), 1);
    }
}
