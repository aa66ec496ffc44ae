//! Routing as Toxiproxy's gorilla/mux router does it.
//!
//! * The request path is percent-decoded first (an invalid escape is a 400, as Go's
//!   `net/http` answers before any handler runs).
//! * An unclean decoded path (`//proxies`, `/a/../proxies`, `/./x`) is answered with
//!   `301 Moved Permanently` to the path cleaned like Go's `path.Clean` (a trailing slash
//!   kept), re-escaped, with the query string kept.
//! * Otherwise the decoded path is matched segment by segment; `{proxy}` and `{toxic}` are
//!   single non-empty segments, so a decoded `/` inside a name never matches.
//! * A path that matches with another method is `405`; no match at all is `404`.

use hyper::Method;

/// A matched route with its path variables (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Reset,
    ProxyIndex,
    ProxyCreate,
    Populate,
    ProxyShow(String),
    ProxyUpdate(String),
    ProxyDelete(String),
    ToxicIndex(String),
    ToxicCreate(String),
    ToxicShow(String, String),
    ToxicUpdate(String, String),
    ToxicDelete(String, String),
    Version,
    Metrics,
    /// `GET /proxies/{proxy}/connections`.
    ConnectionIndex(String),
    /// `DELETE /proxies/{proxy}/connections/{id}`, with the raw query (`reset=true`).
    ConnectionDelete(String, String, Option<String>),
    /// `GET /events`: the Server-Sent Events stream.
    Events,
    /// `GET /ui/…`: a dashboard asset (`""` for the page itself).
    Ui(String),
}

impl Route {
    /// The reference's route name, used as the access log's `handler` field.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Reset => "ResetState",
            Route::ProxyIndex => "ProxyIndex",
            Route::ProxyCreate => "ProxyCreate",
            Route::Populate => "Populate",
            Route::ProxyShow(_) => "ProxyShow",
            Route::ProxyUpdate(_) => "ProxyUpdate",
            Route::ProxyDelete(_) => "ProxyDelete",
            Route::ToxicIndex(_) => "ToxicIndex",
            Route::ToxicCreate(_) => "ToxicCreate",
            Route::ToxicShow(..) => "ToxicShow",
            Route::ToxicUpdate(..) => "ToxicUpdate",
            Route::ToxicDelete(..) => "ToxicDelete",
            Route::Version => "Version",
            Route::Metrics => "Metrics",
            Route::ConnectionIndex(_) => "ConnectionIndex",
            Route::ConnectionDelete(..) => "ConnectionDelete",
            Route::Events => "Events",
            Route::Ui(_) => "Dashboard",
        }
    }
}

/// What the router decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    Matched(Route),
    /// 301 to this `Location`.
    Redirect(String),
    NotFound,
    MethodNotAllowed,
    /// The request target has a malformed percent escape.
    BadRequest,
}

/// Routes a request. `raw_path` is the request path as sent (still percent-encoded),
/// `raw_query` the query string if there was a `?`.
pub fn route(method: &Method, raw_path: &str, raw_query: Option<&str>, metrics: bool) -> Routing {
    let Some(path) = percent_decode(raw_path.as_bytes()) else {
        return Routing::BadRequest;
    };
    let cleaned = clean_path(&path);
    if cleaned != path {
        let mut location = escape_path(&cleaned);
        if let Some(q) = raw_query {
            location.push('?');
            location.push_str(q);
        }
        return Routing::Redirect(location);
    }
    match match_path(method, &path, metrics) {
        Routing::Matched(Route::ConnectionDelete(p, id, _)) => {
            Routing::Matched(Route::ConnectionDelete(p, id, raw_query.map(str::to_owned)))
        }
        other => other,
    }
}

fn var(segment: &[u8]) -> String {
    String::from_utf8_lossy(segment).into_owned()
}

fn match_path(method: &Method, path: &[u8], metrics: bool) -> Routing {
    use Routing::{Matched, MethodNotAllowed, NotFound};
    let Some(rest) = path.strip_prefix(b"/") else {
        return NotFound;
    };
    let segments: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    let m = method;
    match segments.as_slice() {
        [b"reset"] => {
            if m == Method::POST {
                Matched(Route::Reset)
            } else {
                MethodNotAllowed
            }
        }
        [b"proxies"] => match *m {
            Method::GET => Matched(Route::ProxyIndex),
            Method::POST => Matched(Route::ProxyCreate),
            _ => MethodNotAllowed,
        },
        [b"populate"] => {
            if m == Method::POST {
                Matched(Route::Populate)
            } else {
                MethodNotAllowed
            }
        }
        [b"proxies", p] if !p.is_empty() => match *m {
            Method::GET => Matched(Route::ProxyShow(var(p))),
            Method::POST | Method::PATCH => Matched(Route::ProxyUpdate(var(p))),
            Method::DELETE => Matched(Route::ProxyDelete(var(p))),
            _ => MethodNotAllowed,
        },
        [b"proxies", p, b"toxics"] if !p.is_empty() => match *m {
            Method::GET => Matched(Route::ToxicIndex(var(p))),
            Method::POST => Matched(Route::ToxicCreate(var(p))),
            _ => MethodNotAllowed,
        },
        [b"proxies", p, b"toxics", t] if !p.is_empty() && !t.is_empty() => match *m {
            Method::GET => Matched(Route::ToxicShow(var(p), var(t))),
            Method::POST | Method::PATCH => Matched(Route::ToxicUpdate(var(p), var(t))),
            Method::DELETE => Matched(Route::ToxicDelete(var(p), var(t))),
            _ => MethodNotAllowed,
        },
        [b"version"] => {
            if m == Method::GET {
                Matched(Route::Version)
            } else {
                MethodNotAllowed
            }
        }
        [b"metrics"] if metrics => Matched(Route::Metrics),
        [b"proxies", p, b"connections"] if !p.is_empty() => match *m {
            Method::GET => Matched(Route::ConnectionIndex(var(p))),
            _ => MethodNotAllowed,
        },
        [b"proxies", p, b"connections", c] if !p.is_empty() && !c.is_empty() => match *m {
            Method::DELETE => Matched(Route::ConnectionDelete(var(p), var(c), None)),
            _ => MethodNotAllowed,
        },
        [b"events"] => match *m {
            Method::GET => Matched(Route::Events),
            _ => MethodNotAllowed,
        },
        [b"ui"] => Routing::Redirect("/ui/".to_owned()),
        [b"ui", asset] if super::ui::exists(asset) => match *m {
            Method::GET => Matched(Route::Ui(var(asset))),
            _ => MethodNotAllowed,
        },
        _ => NotFound,
    }
}

/// Decodes `%XX` escapes (any byte, `%2F` included). `None` for a malformed escape.
pub fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let well_formed = raw.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || raw
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    well_formed.then(|| percent_encoding::percent_decode(raw).collect())
}

/// gorilla/mux's `cleanPath`: rooted, Go's `path.Clean`, trailing slash kept.
pub fn clean_path(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b"/".to_vec();
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(p.len() + 1);
    for part in &parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() || p.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

/// Go's `url.PathEscape`-style escaping for paths (`escape(s, encodePath)`).
pub fn escape_path(p: &[u8]) -> String {
    percent_encoding::percent_encode(p, PATH_ESCAPED).to_string()
}

/// What Go's `url.PathEscape`-style path encoding escapes: all but the unreserved
/// characters and `$&+,/:;=@`.
const PATH_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, path: &str) -> Routing {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        route(&m, path, None, false)
    }

    fn matched(route: Route) -> Routing {
        Routing::Matched(route)
    }

    #[test]
    fn every_route() {
        let p = || "web".to_owned();
        let t = || "lat".to_owned();
        assert_eq!(r("POST", "/reset"), matched(Route::Reset));
        assert_eq!(r("GET", "/proxies"), matched(Route::ProxyIndex));
        assert_eq!(r("POST", "/proxies"), matched(Route::ProxyCreate));
        assert_eq!(r("POST", "/populate"), matched(Route::Populate));
        assert_eq!(r("GET", "/proxies/web"), matched(Route::ProxyShow(p())));
        assert_eq!(r("POST", "/proxies/web"), matched(Route::ProxyUpdate(p())));
        assert_eq!(r("PATCH", "/proxies/web"), matched(Route::ProxyUpdate(p())));
        assert_eq!(
            r("DELETE", "/proxies/web"),
            matched(Route::ProxyDelete(p()))
        );
        assert_eq!(
            r("GET", "/proxies/web/toxics"),
            matched(Route::ToxicIndex(p()))
        );
        assert_eq!(
            r("POST", "/proxies/web/toxics"),
            matched(Route::ToxicCreate(p()))
        );
        assert_eq!(
            r("GET", "/proxies/web/toxics/lat"),
            matched(Route::ToxicShow(p(), t()))
        );
        assert_eq!(
            r("POST", "/proxies/web/toxics/lat"),
            matched(Route::ToxicUpdate(p(), t()))
        );
        assert_eq!(
            r("PATCH", "/proxies/web/toxics/lat"),
            matched(Route::ToxicUpdate(p(), t()))
        );
        assert_eq!(
            r("DELETE", "/proxies/web/toxics/lat"),
            matched(Route::ToxicDelete(p(), t()))
        );
        assert_eq!(r("GET", "/version"), matched(Route::Version));
        assert_eq!(
            r("GET", "/proxies/web/connections"),
            matched(Route::ConnectionIndex(p()))
        );
        assert_eq!(
            route(
                &Method::DELETE,
                "/proxies/web/connections/7",
                Some("reset=true"),
                false
            ),
            matched(Route::ConnectionDelete(
                p(),
                "7".into(),
                Some("reset=true".into())
            ))
        );
        assert_eq!(r("GET", "/events"), matched(Route::Events));
        assert_eq!(r("GET", "/ui/"), matched(Route::Ui(String::new())));
        assert_eq!(r("GET", "/ui/app.js"), matched(Route::Ui("app.js".into())));
        assert_eq!(r("GET", "/ui"), Routing::Redirect("/ui/".into()));
        assert_eq!(r("GET", "/ui/nope"), Routing::NotFound);
        assert_eq!(r("POST", "/events"), Routing::MethodNotAllowed);
    }

    #[test]
    fn wrong_methods_are_405() {
        for (m, p) in [
            ("HEAD", "/version"),
            ("POST", "/version"),
            ("OPTIONS", "/version"),
            ("DELETE", "/version"),
            ("PUT", "/proxies"),
            ("DELETE", "/proxies"),
            ("PATCH", "/proxies"),
            ("OPTIONS", "/proxies"),
            ("GET", "/populate"),
            ("GET", "/reset"),
            ("PUT", "/proxies/x"),
            ("PUT", "/proxies/x/toxics"),
            ("PATCH", "/proxies/x/toxics"),
            ("PUT", "/proxies/x/toxics/y"),
            ("get", "/proxies"),
        ] {
            assert_eq!(r(m, p), Routing::MethodNotAllowed, "{m} {p}");
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for p in [
            "/",
            "/nope",
            "/proxies/",
            "/proxies/x/toxics/",
            "/proxies/x/toxics/y/z",
            "/VERSION",
            "/metrics",
            "/proxies/x/other",
            "/proxies/a%2Fb",
        ] {
            assert_eq!(r("GET", p), Routing::NotFound, "{p}");
        }
        assert_eq!(r("POST", "/metrics"), Routing::NotFound);
    }

    #[test]
    fn metrics_route_takes_any_method_when_enabled() {
        for m in [Method::GET, Method::POST, Method::HEAD, Method::DELETE] {
            assert_eq!(route(&m, "/metrics", None, true), matched(Route::Metrics));
        }
    }

    #[test]
    fn variables_are_percent_decoded() {
        assert_eq!(
            r("DELETE", "/proxies/%3Ca%3E"),
            matched(Route::ProxyDelete("<a>".into()))
        );
        assert_eq!(
            r("GET", "/proxies/a%20b/toxics/c+d"),
            matched(Route::ToxicShow("a b".into(), "c+d".into()))
        );
        assert_eq!(r("GET", "/prox%69es"), matched(Route::ProxyIndex));
        assert_eq!(r("GET", "/proxies/%zz"), Routing::BadRequest);
        assert_eq!(r("GET", "/proxies/%4"), Routing::BadRequest);
    }

    #[test]
    fn unclean_paths_redirect() {
        assert_eq!(r("GET", "//proxies"), Routing::Redirect("/proxies".into()));
        assert_eq!(
            r("GET", "/a/../proxies"),
            Routing::Redirect("/proxies".into())
        );
        assert_eq!(r("POST", "/./reset"), Routing::Redirect("/reset".into()));
        assert_eq!(
            r("GET", "/proxies//"),
            Routing::Redirect("/proxies/".into())
        );
        assert_eq!(
            r("GET", "/proxies/a%2F..%2Fb"),
            Routing::Redirect("/proxies/b".into())
        );
        assert_eq!(r("GET", "/../../x%20y"), Routing::Redirect("/x%20y".into()));
        assert_eq!(r("GET", "*"), Routing::Redirect("/%2A".into()));
        assert_eq!(
            route(&Method::GET, "//version", Some("x=1"), false),
            Routing::Redirect("/version?x=1".into())
        );
        assert_eq!(
            route(&Method::GET, "//version", Some(""), false),
            Routing::Redirect("/version?".into())
        );
    }

    #[test]
    fn path_cleaning_matches_go() {
        let c = |p: &str| String::from_utf8(clean_path(p.as_bytes())).unwrap();
        assert_eq!(c(""), "/");
        assert_eq!(c("/"), "/");
        assert_eq!(c("//"), "/");
        assert_eq!(c("/a/b/"), "/a/b/");
        assert_eq!(c("/a/./b"), "/a/b");
        assert_eq!(c("/a/b/.."), "/a");
        assert_eq!(c("/a/b/../"), "/a/");
        assert_eq!(c("/.."), "/");
        assert_eq!(c("a/b"), "/a/b");
        assert_eq!(c("/..a/b"), "/..a/b");
    }

    #[test]
    fn escaping_matches_go() {
        assert_eq!(escape_path(b"/a b/<c>?#%"), "/a%20b/%3Cc%3E%3F%23%25");
        assert_eq!(escape_path(b"/$&+,:;=@-_.~"), "/$&+,:;=@-_.~");
        assert_eq!(escape_path("/é".as_bytes()), "/%C3%A9");
    }
}
