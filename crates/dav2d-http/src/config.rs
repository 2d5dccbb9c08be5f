//! The HTTP API's settings and the one function that builds the component
//! from them.

use std::time::Duration;

use dav2d_component::ListenConfig;

use crate::HttpSource;

/// The HTTP server's settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Where it listens: address (loopback by default), token (every
    /// endpoint but `/healthz` then requires `Authorization: Bearer
    /// <token>`), TLS (HTTPS), connections (more are answered 503).
    pub listen: ListenConfig,
    /// Largest body accepted (after decompression), in bytes.
    pub max_body: usize,
    /// A client must send its request headers within this time.
    pub header_timeout: Duration,
    /// A client must send its whole body within this time.
    pub body_timeout: Duration,
    /// Host names (besides IP literals and `localhost`) a request may name
    /// in `Host` when there is no token: the guard against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://dashboard.example`) whose pages may call this
    /// server from a browser; every other cross-site request is refused.
    pub allowed_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: ListenConfig::loopback(8080),
            max_body: 64 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// The component these settings describe, named `name`; `setting` is
    /// the config path of its `bind` (for errors).
    pub fn build(self, name: &str, setting: &str) -> HttpSource {
        HttpSource {
            name: name.to_string(),
            setting: setting.to_string(),
            config: self,
        }
    }
}

/// Whether a request naming `host` (its `Host` header, port included) may
/// be served by a server without a token: an IP literal or `localhost`
/// (which a DNS-rebinding page cannot name) or one of `allowed`.
pub(crate) fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(rest) => {
            // Exactly an address in brackets, then nothing or `:port`.
            let Some((ip, after)) = rest.split_once(']') else {
                return false;
            };
            let port_ok = after.is_empty()
                || after
                    .strip_prefix(':')
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            return port_ok && ip.parse::<std::net::Ipv6Addr>().is_ok();
        }
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.');
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// What a browser request is to this server, by its `Origin` and
/// `Sec-Fetch-Site` headers and its `Host`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Site {
    /// Same-origin, or not from a page at all (curl, a script).
    Own,
    /// From an origin `allowed` lists: served, with CORS.
    Listed,
    /// From a page on another site: refused.
    Foreign,
}

/// Which [`Site`] a request comes from: `origin` is the `Origin` header,
/// `site` the `Sec-Fetch-Site` header, `host` the `Host`.
pub(crate) fn site_of(
    origin: Option<&str>,
    site: Option<&str>,
    host: Option<&str>,
    allowed: &[String],
) -> Site {
    let listed = origin.is_some_and(|o| {
        let o = o.trim_end_matches('/');
        allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
    });
    let own = match (site, origin) {
        // Browsers that send Sec-Fetch-Site say which it is.
        (Some(site), _) => {
            site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")
        }
        // Older browsers: the Origin's host must be this server's.
        (None, Some(origin)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| host.is_some_and(|h| h.eq_ignore_ascii_case(authority))),
        // Not from a page.
        (None, None) => true,
    };
    match (listed, own) {
        (true, _) => Site::Listed,
        (false, true) => Site::Own,
        (false, false) => Site::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::{Site, host_allowed, site_of};

    #[test]
    fn cross_site_requests_are_refused_unless_their_origin_is_listed() {
        let allowed = vec!["https://dash.example".to_string()];
        let host = Some("127.0.0.1:8080");
        let cases = [
            (None, None, true),
            (Some("http://127.0.0.1:8080"), Some("same-origin"), true),
            (None, Some("none"), true),
            (Some("https://evil.example"), Some("cross-site"), false),
            (Some("https://evil.example"), None, false),
            (Some("null"), None, false),
            (None, Some("cross-site"), false),
            (Some("http://127.0.0.1:8080"), None, true),
            (Some("https://dash.example"), Some("cross-site"), true),
            (Some("https://dash.example"), None, true),
            (Some("http://localhost:8080"), Some("same-site"), false),
        ];
        for (origin, site, expected) in cases {
            let served = site_of(origin, site, host, &allowed) != Site::Foreign;
            assert_eq!(served, expected, "{origin:?} {site:?}");
        }
    }

    #[test]
    fn hosts_a_rebinding_page_can_name_are_refused() {
        let allowed = vec!["dav2d.internal".to_string()];
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:80",
            "[::1]:8080",
            "[::1]",
            "10.0.0.5",
            "app.localhost:1",
            "dav2d.internal:8080",
        ] {
            assert!(host_allowed(host, &allowed), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[evil]:80",
            "[::1]evil.com",
            "[::1]:80evil",
            "[::1]:",
            "[::1",
            "",
        ] {
            assert!(!host_allowed(host, &allowed), "{host}");
        }
    }
}
