//! What a web page may not do to the daemon (issue 21). The API is for programs; a browser
//! visiting some page must not be able to drive it. Three rules, each a middleware:
//!
//! - [`check_host`], on every route before routing: the request's `Host` (and an HTTP/2
//!   `:authority`, which hyper puts in the URI) must be one the daemon answers to, else 421.
//!   This is the guard against DNS rebinding: a page on `attacker.example`, whose name is then
//!   pointed at 127.0.0.1, is same-origin with the daemon as far as the browser knows, but its
//!   requests still say `Host: attacker.example`.
//! - [`check_origin`], on every route: a request that carries an `Origin` (browsers send one on
//!   every POST, PUT and DELETE, and on every cross-origin fetch) must come from the daemon's
//!   own origin (its status page), else 403 `forbidden_origin`. `Origin: null` (sandboxed
//!   frames, `file:` and `data:` pages) is refused too.
//! - [`require_json_post`], on the `/v1` routes: a POST must say `Content-Type:
//!   application/json`, even with an empty body. A page may send a "simple" request (a POST of
//!   `text/plain`, a form, or no body, with no custom header) to any site without the browser
//!   asking first; a JSON content type makes it a preflighted one, and the daemon answers no
//!   CORS, so the browser never sends it. PUT and DELETE are never simple: they are always
//!   preflighted cross-site, and so never sent either.
//!
//! A request without `Host` (HTTP/1.0) is served: every browser sends one, so no page can be
//! behind it, and `curl --http1.0` or a health checker may well not.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use warmpool_core::Backend;

use crate::code::Code;
use crate::{ApiError, Shared};

/// The names a request's `Host` may carry: the daemon's own, and `server.allowed_hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// The port the daemon listens on. `None` (a router not bound to a socket, as in tests):
    /// the default names are allowed on any port.
    pub listen_port: Option<u16>,
    /// Further names from `server.allowed_hosts`, lower case (an IPv6 address in brackets),
    /// each on one port or, with `None`, on any.
    pub names: Vec<(String, Option<u16>)>,
    /// `"*"` in `server.allowed_hosts`: every `Host` is served, and the rebinding guard is off.
    pub any: bool,
}

impl AllowedHosts {
    /// Whether a request naming `host` (lower case) and `port` (`None`: none given, so HTTP's
    /// 80) is for this daemon.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        if self.any {
            return true;
        }
        let port = port.unwrap_or(80);
        let on_our_port = self.listen_port.is_none_or(|p| p == port);
        // `localhost` resolves to this machine whatever page asks. An IP literal is no name, so
        // it cannot be rebound: a page whose origin is `http://10.0.0.5:7070` was served by that
        // very socket, which is the daemon itself (its status page). Allowing every IP literal
        // on the listening port lets clients reach a daemon listening on a non-loopback
        // address by its address, without listing each one.
        if (host == "localhost" || is_ip_literal(host)) && on_our_port {
            return true;
        }
        self.names
            .iter()
            .any(|(name, p)| name == host && p.is_none_or(|p| p == port))
    }

    /// What is allowed, for an error message.
    fn describe(&self) -> String {
        let port = self
            .listen_port
            .map_or_else(|| "any port".to_string(), |p| format!("port {p}"));
        let mut s = format!("localhost and IP addresses on {port}");
        for (name, p) in &self.names {
            s.push_str(", ");
            s.push_str(name);
            if let Some(p) = p {
                s.push_str(&format!(":{p}"));
            }
        }
        s
    }
}

/// An IPv4 address, or an IPv6 address in brackets.
fn is_ip_literal(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// `host[:port]` split and lower-cased, an IPv6 address keeping its brackets; `None` when it
/// is not an authority a browser would send (user info, a path, an empty or bad port).
pub fn split_authority(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (h, rest) = s.split_at(end + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        && (host.starts_with('[') || !host.contains(':'));
    ok.then(|| (host.to_ascii_lowercase(), port))
}

/// Every authority the request names: its URI's (HTTP/2 `:authority`, or an absolute-form
/// target) and each `Host` header. A header that is not text is returned as `None`.
fn authorities(req: &Request) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = req
        .uri()
        .authority()
        .map(|a| Some(a.as_str().to_string()))
        .into_iter()
        .collect();
    out.extend(
        req.headers()
            .get_all(header::HOST)
            .iter()
            .map(|v| v.to_str().ok().map(str::to_string)),
    );
    out
}

/// Middleware on every route: 421 unless each authority the request names is allowed.
pub async fn check_host<B: Backend>(
    State(s): State<Shared<B>>,
    req: Request,
    next: Next,
) -> Response {
    for given in authorities(&req) {
        let allowed = given
            .as_deref()
            .and_then(split_authority)
            .is_some_and(|(h, p)| s.allowed_hosts.allows(&h, p));
        if !allowed {
            let shown = given.unwrap_or_else(|| "(not text)".into());
            return ApiError::new(
                Code::HostNotAllowed,
                format!(
                    "this daemon does not answer to Host {shown:?}: a web page on a name pointed \
                     at this machine must not reach it (DNS rebinding). It answers to {}; add \
                     the name (or name:port) to server.allowed_hosts to allow it",
                    s.allowed_hosts.describe()
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The request's own origin as `(host, port)`: its `:authority` or `Host`, the port `None`
/// when none is given.
fn own_authority(req: &Request) -> Option<(String, Option<u16>)> {
    let given = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })?;
    split_authority(&given)
}

/// Whether `origin` (`scheme://host[:port]`, as browsers send it) is the request's own origin:
/// the same name, and the same port (an origin's port defaults to its scheme's; a `Host`
/// without one was reached on the scheme's default port, 80 or 443 behind a TLS proxy).
fn same_origin(origin: &HeaderValue, own: Option<&(String, Option<u16>)>) -> bool {
    let Some((own_host, own_port)) = own else {
        return false;
    };
    let Some((scheme, rest)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Some((host, port)) = split_authority(rest) else {
        return false;
    };
    let port = port.unwrap_or(default);
    host == *own_host
        && match own_port {
            Some(p) => port == *p,
            None => port == default,
        }
}

/// Middleware on every route: 403 `forbidden_origin` when the request carries an `Origin`
/// other than its own.
pub async fn check_origin(req: Request, next: Next) -> Response {
    let own = own_authority(&req);
    let foreign = req
        .headers()
        .get_all(header::ORIGIN)
        .iter()
        .find(|o| !same_origin(o, own.as_ref()));
    if let Some(origin) = foreign {
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        let why = if shown == "null" {
            "Origin: null (a sandboxed frame, a file: or data: page) is refused".to_string()
        } else {
            format!("Origin {shown} is not this daemon's own origin")
        };
        return ApiError::new(
            Code::ForbiddenOrigin,
            format!(
                "{why}: requests from web pages of other origins are refused. The API is for \
                 programs (which send no Origin); the daemon's own status page is at /"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Route middleware on `/v1`: a POST must say `Content-Type: application/json` (or a `+json`
/// type), whatever its body, or it is refused with 415 before its handler runs.
pub async fn require_json_post(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !crate::body::says_json(req.headers()) {
        return ApiError::new(
            Code::UnsupportedMediaType,
            "a POST must say `Content-Type: application/json`, even with an empty body: \
             a web page on another site may send other types here without the browser asking",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_as_browsers_send_them() {
        let s = |a| split_authority(a);
        assert_eq!(s("LocalHost:7070"), Some(("localhost".into(), Some(7070))));
        assert_eq!(s("example"), Some(("example".into(), None)));
        assert_eq!(s("[::1]:7070"), Some(("[::1]".into(), Some(7070))));
        assert_eq!(s("[::1]"), Some(("[::1]".into(), None)));
        for bad in [
            "", ":7070", "a:", "a:70000", "a:+1", "::1", "[::1", "[::1]x", "u@a", "a/b", "a b",
        ] {
            assert_eq!(s(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_defaults_are_loopback_names_and_ip_literals_on_the_listening_port() {
        let a = AllowedHosts {
            listen_port: Some(7070),
            ..AllowedHosts::default()
        };
        for (h, p) in [
            ("localhost", Some(7070)),
            ("127.0.0.1", Some(7070)),
            ("[::1]", Some(7070)),
            ("10.0.0.5", Some(7070)),
            ("[fe80::1]", Some(7070)),
        ] {
            assert!(a.allows(h, p), "{h} {p:?}");
        }
        for (h, p) in [
            ("localhost", Some(8080)),
            ("localhost", None),
            ("10.0.0.5", Some(80)),
            ("attacker.example", Some(7070)),
            ("127.0.0.1.nip.io", Some(7070)),
            ("[not-ip]", Some(7070)),
        ] {
            assert!(!a.allows(h, p), "{h} {p:?}");
        }
    }

    #[test]
    fn configured_names_take_any_port_or_theirs() {
        let a = AllowedHosts {
            listen_port: Some(7070),
            names: vec![("pool.internal".into(), None), ("box".into(), Some(9000))],
            any: false,
        };
        assert!(a.allows("pool.internal", Some(1)));
        assert!(a.allows("pool.internal", None));
        assert!(a.allows("box", Some(9000)));
        assert!(!a.allows("box", Some(7070)));
        assert!(!a.allows("box", None));
        let any = AllowedHosts {
            any: true,
            ..AllowedHosts::default()
        };
        assert!(any.allows("attacker.example", Some(1)));
    }

    #[test]
    fn an_origin_is_ours_only_with_the_same_name_and_port() {
        let own = |h: &str, p| Some((h.to_string(), p));
        let o = |s: &'static str| HeaderValue::from_static(s);
        assert!(same_origin(
            &o("http://localhost:7070"),
            own("localhost", Some(7070)).as_ref()
        ));
        assert!(same_origin(
            &o("HTTP://LOCALHOST:7070"),
            own("localhost", Some(7070)).as_ref()
        ));
        assert!(same_origin(
            &o("https://pool.example"),
            own("pool.example", None).as_ref()
        ));
        assert!(same_origin(
            &o("http://pool.example:80"),
            own("pool.example", None).as_ref()
        ));
        assert!(!same_origin(
            &o("http://localhost:8000"),
            own("localhost", None).as_ref()
        ));
        assert!(!same_origin(
            &o("http://localhost:8000"),
            own("localhost", Some(7070)).as_ref()
        ));
        assert!(!same_origin(
            &o("http://localhost"),
            own("localhost", Some(7070)).as_ref()
        ));
        assert!(!same_origin(
            &o("null"),
            own("localhost", Some(7070)).as_ref()
        ));
        assert!(!same_origin(
            &o("ws://localhost:7070"),
            own("localhost", Some(7070)).as_ref()
        ));
        assert!(!same_origin(&o("http://localhost:7070"), None));
    }
}
