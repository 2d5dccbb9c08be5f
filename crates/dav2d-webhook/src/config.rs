//! The webhook sink's settings.

use std::time::Duration;

use crate::Format;

/// Where and how transitions are sent.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// `http://host:port/path` of the receiver.
    pub url: String,
    /// The constraints whose transitions are sent (every one when empty).
    pub names: Vec<String>,
    /// The body.
    pub format: Format,
    /// Transitions waiting to be sent, at most (past it, the newest per key
    /// are kept and the rest counted).
    pub queue: usize,
    /// Tries of one transition before it is counted as failed.
    pub tries: u32,
    /// How long one try may take.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Settings for `url` with the defaults: every constraint, dav2d's
    /// body, a queue of 1024, 5 tries, 5 s each.
    pub fn new(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: url.to_string(),
            names: Vec::new(),
            format: Format::Json,
            queue: 1024,
            tries: 5,
            timeout: Duration::from_secs(5),
        }
    }

    /// The component these settings describe.
    pub fn build(self, name: &str) -> crate::WebhookSink {
        crate::WebhookSink {
            name: name.to_string(),
            config: self,
        }
    }
}

/// Checks that `url` is one the sink can POST to: what is wrong and what to
/// do otherwise.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL ({e}); give http://host:port/path"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "'{url}': https is not supported by the webhook sink; send to a local TLS-terminating proxy over http"
            ));
        }
        _ => {
            return Err(format!(
                "'{url}' is not an http:// URL; give http://host:port/path"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{url}' names no host; give http://host:port/path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert!(check_url("http://127.0.0.1:9093/api/v2/alerts").is_ok());
        assert!(
            check_url("https://hooks.example/x")
                .unwrap_err()
                .contains("https is not supported")
        );
        assert!(
            check_url("ftp://x/")
                .unwrap_err()
                .contains("not an http:// URL")
        );
        assert!(check_url("not a url").unwrap_err().contains("not a URL"));
    }
}
