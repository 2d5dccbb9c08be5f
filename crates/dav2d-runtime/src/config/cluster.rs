//! The `cluster:` section: scale-out over NATS JetStream, resolved into
//! the cluster's settings (a top-level section, not a kind of `sources:`).

use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigError, Spanned};

/// The `cluster:` section: scale-out over NATS JetStream.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `nats://host:port` of the JetStream server (or `--cluster URL`).
    pub url: Option<Spanned<String>>,
    /// Partitions of the key space, the same on every instance (default 16).
    pub partitions: Option<Spanned<u32>>,
    /// This instance's name (default: the host name and process id).
    pub instance: Option<String>,
    /// A partition whose owner stops renewing is taken over after this
    /// long, e.g. `10s` (the default).
    pub lease_ttl: Option<Spanned<String>>,
    /// How often an owner checkpoints each partition it applies, e.g. `10s`
    /// (the default); `0s` turns checkpoints off (a new owner replays the
    /// partition from its first message).
    pub checkpoint_every: Option<Spanned<String>>,
    /// Copies JetStream keeps of the input stream and the buckets (default
    /// 1; 3 on a three-server JetStream cluster).
    pub replicas: Option<Spanned<usize>>,
    /// How often owners publish their changed keys' latest readings for
    /// reads on other instances, e.g. `1s` (the default).
    pub publish_every: Option<Spanned<String>>,
}

impl Config {
    /// The cluster this instance joins, if the file (or `url`, from the
    /// command line) asks for one.
    pub fn cluster(
        &self,
        url: Option<&str>,
    ) -> Result<Option<dav2d_cluster::ClusterConfig>, ConfigError> {
        let section = &self.cluster;
        // An error about `--cluster` (the command line: no line of the file).
        let flag = |message: String| ConfigError {
            file: self.file().to_path_buf(),
            line: 0,
            column: 0,
            field: "--cluster".to_string(),
            message,
        };
        let without = || dav2d_component::built_without("clustering", "cluster");
        let url = match (url, &section.url) {
            (Some(_), _) if !dav2d_cluster::AVAILABLE => return Err(flag(without())),
            (Some(url), _) => url.to_string(),
            (None, Some(written)) if !dav2d_cluster::AVAILABLE => {
                return Err(self.error_at(written, "cluster.url".to_string(), without()));
            }
            (None, Some(written)) => {
                // May carry a NATS user (`nats://user:password@host:4222`),
                // or be `${NAME}` from the environment.
                let place = self.place();
                let url = place.secret(written, "cluster.url")?;
                dav2d_nats::check_url(url.trim())
                    .map_err(|m| place.error_at(written, "cluster.url".to_string(), m))?;
                url.trim().to_string()
            }
            (None, None) => return Ok(None),
        };
        dav2d_nats::check_url(&url).map_err(flag)?;
        let partitions = match &section.partitions {
            Some(p) if !(1..=4096).contains(&p.value) => {
                return Err(self.error_at(
                    p,
                    "cluster.partitions".to_string(),
                    format!(
                        "{} is out of range; give 1 to 4096 (the same on every instance)",
                        p.value
                    ),
                ));
            }
            Some(p) => p.value,
            None => 16,
        };
        let lease_ttl = self
            .duration(&section.lease_ttl, "cluster.lease_ttl".to_string())?
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(300));
        let checkpoint_every = self
            .duration(
                &section.checkpoint_every,
                "cluster.checkpoint_every".to_string(),
            )?
            .unwrap_or(Duration::from_secs(10));
        let publish_every = self
            .duration(&section.publish_every, "cluster.publish_every".to_string())?
            .unwrap_or(Duration::from_secs(1));
        let replicas = match &section.replicas {
            Some(r) if !(1..=5).contains(&r.value) => {
                return Err(self.error_at(
                    r,
                    "cluster.replicas".to_string(),
                    format!("{} is out of range; JetStream keeps 1 to 5 copies", r.value),
                ));
            }
            Some(r) => r.value,
            None => 1,
        };
        let instance =
            (section.instance.clone()).unwrap_or_else(dav2d_component::section::instance_name);
        Ok(Some(dav2d_cluster::ClusterConfig {
            url,
            partitions,
            instance,
            lease_ttl,
            checkpoint_every,
            replicas,
            publish_every,
        }))
    }
}
