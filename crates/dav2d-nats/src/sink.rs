//! The NATS sink: publishes every update of the names it serves as the
//! JSON of `/events` to a subject made from its template, through JetStream
//! with `Nats-Msg-Id` when asked (so republishing after a crash is deduplicated).

use std::sync::Arc;

use dav2d_component::{
    AtStop, BrokerHealth, Context, Delivery, Running, Sink, StartError, ThreadTask, drain,
};

use crate::config::NatsSinkConfig;
use crate::source::{connect, runtime};

/// The `nats` sink.
#[derive(Clone, Debug)]
pub struct NatsSink {
    pub(crate) name: String,
    pub(crate) config: NatsSinkConfig,
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn delivery(&self) -> Delivery {
        Delivery::Conflating
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let updates = context.subscribe_outputs(&self.name, &config.names, 1 << 16)?;
        let health = Arc::new(BrokerHealth::default());
        let task_health = Arc::clone(&health);
        let task = ThreadTask::spawn("dav2d-nats-sink", health, move |stop| {
            let runtime = match runtime() {
                Ok(runtime) => runtime,
                Err(error) => return task_health.failed(error),
            };
            let client = match runtime.block_on(connect(&config.url, &task_health)) {
                Ok(client) => client,
                Err(error) => return task_health.failed(error),
            };
            task_health.connected();
            let jetstream = config
                .jetstream
                .then(|| async_nats::jetstream::new(client.clone()));
            // Publishing is quick: what waits at stop goes out before the flush.
            drain(&updates, &stop, AtStop::Drain, |update| {
                let (_, json) = dav2d_wire::update_json(&update);
                let subject = config.subject.topic_for(&update.name, &update.key);
                let payload: Vec<u8> = json.to_string().into_bytes();
                let mut headers = async_nats::HeaderMap::new();
                let id = format!("{}/{}/{}", update.name, update.key, update.seq);
                headers.insert("Nats-Msg-Id", id.as_str());
                let sent = runtime.block_on(async {
                    match &jetstream {
                        Some(js) => match js
                            .publish_with_headers(subject.clone(), headers, payload.into())
                            .await
                        {
                            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        },
                        None => client
                            .publish_with_headers(subject.clone(), headers, payload.into())
                            .await
                            .map_err(|e| e.to_string()),
                    }
                });
                match sent {
                    Ok(()) => task_health.message(0),
                    Err(error) => {
                        task_health.message(1);
                        tracing::warn!(%subject, %error, "Publishing to NATS failed.");
                    }
                }
            });
            let _ = runtime.block_on(client.flush());
        })?;
        Ok(Box::new(task))
    }
}
