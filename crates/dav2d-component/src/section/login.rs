//! Broker logins and secrets as a section writes them: a user and password
//! in the URL (`mqtt://user:secret@host:1883`) or as fields, a value read
//! from the environment (`password: ${MQTT_PASSWORD}`) so secrets stay out
//! of YAML, TLS to the broker (`ca`), and the name that tells this
//! instance from another.

use std::fmt;

use serde_saphyr::Spanned;

use super::{ConfigError, SectionContext};
use crate::BrokerTls;

/// A user name and its password, given to a broker when connecting.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name.
    pub user: String,
    /// The password (may be empty).
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password: settings are logged and printed.
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// `url` without its user information, and the login it carried:
/// `mqtt://user:secret@host:1883` is `mqtt://host:1883` and (user, secret).
pub fn split_login(url: &str) -> (String, Option<Login>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let login = Login {
        user: user.to_string(),
        password: password.to_string(),
    };
    (format!("{scheme}://{host}{path}"), Some(login))
}

/// This process's name among instances of one config: the host name and
/// the process id (`plant-7-4242`).
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dav2d".to_string());
    format!("{host}-{}", std::process::id())
}

impl SectionContext {
    /// A value that may come from the environment: `${NAME}` is the
    /// variable NAME (an error when it is not set), anything else itself.
    pub fn secret(&self, value: &Spanned<String>, field: &str) -> Result<String, ConfigError> {
        let text = value.value.trim();
        let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return Ok(value.value.clone());
        };
        std::env::var(name).map_err(|_| {
            self.error_at(
                value,
                field.to_string(),
                format!("the environment variable {name} is not set; set it, or write the value"),
            )
        })
    }

    /// TLS to a broker, when its URL asks for it (`tls_scheme`: `mqtts://`,
    /// `tls://`) or a `ca` file is given (read from the config's folder and
    /// checked now, so `check` refuses a bad one as `run` would).
    pub fn broker_tls(
        &self,
        tls_scheme: bool,
        ca: &Option<Spanned<String>>,
        prefix: &str,
    ) -> Result<Option<BrokerTls>, ConfigError> {
        if !tls_scheme && ca.is_none() {
            return Ok(None);
        }
        let tls = BrokerTls {
            ca: ca.as_ref().map(|c| self.folder().join(c.value.trim())),
        };
        if let Err(message) = tls.client_config() {
            return Err(match ca {
                Some(written) => self.error_at(written, format!("{prefix}.ca"), message),
                None => self.error_in(format!("{prefix}.url"), message),
            });
        }
        Ok(Some(tls))
    }

    /// The login of a broker section: from its URL (`url_login`) or its
    /// `username` and `password` fields (either may be `${NAME}`), not both.
    pub fn login(
        &self,
        url_login: Option<Login>,
        (username, password): (&Option<Spanned<String>>, &Option<Spanned<String>>),
        prefix: &str,
    ) -> Result<Option<Login>, ConfigError> {
        match (url_login, username, password) {
            (login, None, None) => Ok(login),
            (Some(_), Some(written), _) | (Some(_), None, Some(written)) => Err(self.error_at(
                written,
                format!("{prefix}.username"),
                "the URL gives a user already; give the login either in the URL or as username and password".to_string(),
            )),
            (None, None, Some(written)) => Err(self.error_at(
                written,
                format!("{prefix}.password"),
                "a password needs its username".to_string(),
            )),
            (None, Some(user), password) => Ok(Some(Login {
                user: self.secret(user, &format!("{prefix}.username"))?,
                password: match password {
                    Some(p) => self.secret(p, &format!("{prefix}.password"))?,
                    None => String::new(),
                },
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_login;

    #[test]
    fn a_url_login_is_taken_out_of_the_url() {
        let (url, login) = split_login("mqtt://user:s3:cret@broker:1883");
        assert_eq!(url, "mqtt://broker:1883");
        let login = login.unwrap();
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("user", "s3:cret")
        );
        assert!(!format!("{login:?}").contains("s3"));
        assert_eq!(split_login("nats://host:4222").0, "nats://host:4222");
        assert!(split_login("nats://host:4222").1.is_none());
    }
}
