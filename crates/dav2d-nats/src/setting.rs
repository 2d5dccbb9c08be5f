//! How resolved NATS settings build their components and describe
//! themselves in the spec (only with the client: without it a `kind: nats`
//! entry is refused when it is resolved).

use dav2d_component::section::{
    ComponentSpec, SinkSetting, SourceSetting, component, filters, route_streams,
};
use dav2d_component::{Sink, Source};

use crate::config::*;

impl SourceSetting for NatsSourceConfig {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        let address = format!("{} [{}]", self.url, filters(&self.subjects));
        component(name, "nats", address, route_streams(&self.subjects))
    }
}

impl SinkSetting for NatsSinkConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        component(name, "nats", self.url.clone(), self.names.clone())
    }
}
