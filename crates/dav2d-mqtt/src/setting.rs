//! How resolved MQTT settings build their components and describe
//! themselves in the spec (only with the client: without it a `kind: mqtt`
//! entry is refused when it is resolved).

use dav2d_component::section::Login;
use dav2d_component::section::{
    ComponentSpec, SinkSetting, SourceSetting, component, filters, route_streams,
};
use dav2d_component::{Sink, Source};

use crate::config::*;

/// The broker as the spec shows it: its user, never the password.
fn shown((host, port): &(String, u16), login: &Option<Login>, tls: bool) -> String {
    let scheme = if tls { "mqtts" } else { "mqtt" };
    match login {
        Some(login) => format!("{scheme}://{}@{host}:{port}", login.user),
        None => format!("{scheme}://{host}:{port}"),
    }
}

impl SourceSetting for MqttSourceConfig {
    fn build(&self, name: &str, _setting: &str) -> Box<dyn Source> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        let address = format!(
            "{} [{}]",
            shown(&self.broker, &self.login, self.tls.is_some()),
            filters(&self.subscriptions)
        );
        component(name, "mqtt", address, route_streams(&self.subscriptions))
    }
}

impl SinkSetting for MqttSinkConfig {
    fn build(&self, name: &str) -> Box<dyn Sink> {
        Box::new(self.clone().build(name))
    }

    fn describe(&self, name: &str) -> ComponentSpec {
        let (host, port) = &self.broker;
        component(
            name,
            "mqtt",
            format!("mqtt://{host}:{port}"),
            self.names.clone(),
        )
    }
}
