//! The MQTT sink: publishes every update of the names it serves (node
//! outputs, constraint states and transitions) as the JSON of `/events`,
//! retained (so a late subscriber gets each key's current value or state),
//! from a subscription to the graph. An update over `max_message` is
//! counted and skipped, never sent to break the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dav2d_component::{Context, Delivery, Running, Sink, StartError, ThreadTask, Throttle};
use rumqttc::{AsyncClient, Event, Packet};

use crate::config::MqttSinkConfig;
use crate::source::{client_options, qos, runtime};
use dav2d_component::BrokerHealth;

/// The `mqtt` sink.
#[derive(Clone, Debug)]
pub struct MqttSink {
    pub(crate) name: String,
    pub(crate) config: MqttSinkConfig,
}

impl Sink for MqttSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn delivery(&self) -> Delivery {
        Delivery::Conflating
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let updates = context.subscribe_outputs(&self.name, &config.names, 1 << 16)?;
        let mut options = client_options(
            &config.client_id,
            &config.broker,
            config.login.as_ref(),
            config.tls.as_ref(),
        )?;
        options.set_keep_alive(Duration::from_secs(30));
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let health = Arc::new(BrokerHealth::default());
        let publisher = {
            let (client, config) = (client.clone(), config.clone());
            let health = Arc::clone(&health);
            let stopping = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stopping);
            let oversized = Throttle::new(Duration::from_secs(10));
            let thread = std::thread::Builder::new()
                .name("dav2d-mqtt-publish".to_string())
                .spawn(move || {
                    // The connection stops with it: what waits at stop is left.
                    dav2d_component::drain(
                        &updates,
                        &flag,
                        dav2d_component::AtStop::Drop,
                        |update| {
                            let (_, json) = dav2d_wire::update_json(&update);
                            let topic = config.topic.topic_for(&update.name, &update.key);
                            let payload = json.to_string().into_bytes();
                            if payload.len() > config.max_message {
                                // Refused here, where it can be counted,
                                // rather than by the connection (which
                                // would drop it and reconnect).
                                health.message(1);
                                if let Some(held) = oversized.ready() {
                                    tracing::warn!(
                                        %topic,
                                        bytes = payload.len(),
                                        max_message = config.max_message,
                                        more_since_last_line = held,
                                        "An MQTT update over max_message was not published; raise the sink's max_message to publish it."
                                    );
                                }
                                return;
                            }
                            // Every update is retained (a constraint's
                            // carries its new state, with the transition), so
                            // the retained message is the current state.
                            let level = qos(config.qos);
                            while client
                                .try_publish(&topic, level, config.retain, payload.clone())
                                .is_err()
                                && !flag.load(Ordering::Acquire)
                            {
                                // The request channel is full: the broker is
                                // away or slow. Updates meanwhile conflate
                                // per key in the subscription.
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        },
                    );
                })
                .map_err(|e| {
                    StartError::Other(format!("cannot start the MQTT publish thread: {e}"))
                })?;
            (stopping, thread)
        };
        let loop_health = Arc::clone(&health);
        let task = ThreadTask::spawn("dav2d-mqtt-sink", health, move |stop| {
            let Some(runtime) = runtime(&loop_health) else {
                return;
            };
            let mut eventloop = runtime.block_on(drive(eventloop, &loop_health, &stop));
            let (stopping, thread) = publisher;
            stopping.store(true, Ordering::Release);
            let _ = thread.join();
            // What was queued goes out before the connection closes.
            let _ = client.try_disconnect();
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Ok(event) = eventloop.poll().await {
                        if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                            break;
                        }
                    }
                })
                .await;
            });
        })?;
        Ok(Box::new(task))
    }
}

/// Drives the connection until `stop`, backing off while the broker is away.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    health: &BrokerHealth,
    stop: &AtomicBool,
) -> rumqttc::EventLoop {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        match tokio::time::timeout(Duration::from_millis(100), eventloop.poll()).await {
            Err(_) => {}
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                health.connected();
                backoff = Duration::from_millis(100);
            }
            Ok(Ok(Event::Outgoing(_))) => health.message(0),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                health.failed(error.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    eventloop
}
