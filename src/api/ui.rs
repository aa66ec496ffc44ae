//! The dashboard (`/ui/`, beyond.md §3.3): three files embedded in the binary, and the
//! checks that make a browser a safe client.
//!
//! * The page sends `X-Toxi-Dashboard: 1` on every API call. A foreign page cannot send
//!   that header without a CORS preflight, which toxi never grants (no route answers
//!   `OPTIONS` or sends `Access-Control-*`), so the header lifts the `Mozilla/` block.
//! * DNS rebinding: such requests, and the page itself, must name a `Host` that is an IP
//!   literal, `localhost`, or one of `-ui-allowed-hosts`.
//! * The page itself needs no token; every API call it makes does (when `-api-token` is
//!   set, the page asks for it and sends `Authorization: Bearer`).

use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::Request;

use super::handlers::Reply;

const INDEX: &str = include_str!("../../ui/index.html");
const APP: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// Whether `/ui/<name>` is an asset (`""` is the page).
pub fn exists(name: &[u8]) -> bool {
    matches!(name, b"" | b"index.html" | b"app.js" | b"style.css")
}

/// The asset, with headers that keep it from being framed or loading anything foreign.
pub fn asset(name: &str) -> Reply {
    let (ct, body) = match name {
        "app.js" => ("text/javascript; charset=utf-8", APP),
        "style.css" => ("text/css; charset=utf-8", STYLE),
        _ => ("text/html; charset=utf-8", INDEX),
    };
    let mut r = Reply::new(200, Some(ct), body)
        .with_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        )
        .with_header(header::X_FRAME_OPTIONS, "DENY")
        .with_header(header::CACHE_CONTROL, "no-store")
        .with_header(header::REFERRER_POLICY, "no-referrer");
    r.nosniff = true;
    r
}

/// The request carries `X-Toxi-Dashboard: 1`.
pub fn is_dashboard_request(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(HeaderName::from_static("x-toxi-dashboard"))
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// The request's `Host` is an IP literal, `localhost`, or listed in `allowed`.
pub fn host_allowed(req: &Request<Incoming>, allowed: &[String]) -> bool {
    let host = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok(),
        None => req.uri().authority().map(|a| a.as_str()),
    };
    host.is_some_and(|h| host_ok(h, allowed))
}

/// The check behind [`host_allowed`], on the header's text (`name[:port]`).
pub fn host_ok(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.is_empty() {
        return false;
    }
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name) || a.eq_ignore_ascii_case(host))
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let allowed = vec!["toxi.internal".to_owned()];
        for ok in [
            "127.0.0.1:8474",
            "127.0.0.1",
            "localhost:8474",
            "LOCALHOST",
            "[::1]:8474",
            "[::1]",
            "10.1.2.3:80",
            "toxi.internal:8474",
            "toxi.internal",
        ] {
            assert!(host_ok(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example:8474",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            ":8474",
            "[::1",
            "[evil]:80",
            "localhost:x",
            "toxi.internal.evil:80",
        ] {
            assert!(!host_ok(bad, &allowed), "{bad}");
        }
    }
}
