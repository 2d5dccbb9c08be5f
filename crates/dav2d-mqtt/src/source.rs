//! The MQTT source: one client thread driving the event loop (subscribing
//! again at every CONNACK, backing off while the broker is away) and one
//! thread applying messages in arrival order, acknowledging QoS 1 messages
//! only once applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dav2d_component::{Context, Intake, Running, Source, StartError, ThreadTask};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};

use crate::config::MqttSourceConfig;
use dav2d_component::BrokerHealth;

/// The `mqtt` source.
#[derive(Clone, Debug)]
pub struct MqttSource {
    pub(crate) name: String,
    pub(crate) config: MqttSourceConfig,
}

pub(crate) fn qos(level: u8) -> QoS {
    if level == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// A current-thread runtime for a client's event loop, or the reason
/// (reported as the component's health).
pub(crate) fn runtime(health: &BrokerHealth) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            health.failed(format!("cannot start the client's runtime: {error}"));
            None
        }
    }
}

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Source for MqttSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let mut options = MqttOptions::new(&config.client_id, &config.broker.0, config.broker.1);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(config.clean_session)
            .set_manual_acks(true);
        let (client, eventloop) = AsyncClient::new(options, 64);
        let health = Arc::new(BrokerHealth::default());
        let (handed, received) = tokio::sync::mpsc::channel::<Publish>(config.queue.max(1));
        let applier = {
            let (client, health, intake) =
                (client.clone(), Arc::clone(&health), context.intake.clone());
            let config = config.clone();
            std::thread::Builder::new()
                .name("dav2d-mqtt-apply".to_string())
                .spawn(move || apply(received, &client, &intake, &config, &health))
                .map_err(|e| {
                    StartError::Other(format!("cannot start the MQTT apply thread: {e}"))
                })?
        };
        let filters: Vec<String> = config
            .subscriptions
            .iter()
            .map(|s| s.topic.filter())
            .collect();
        let level = qos(config.qos);
        let loop_health = Arc::clone(&health);
        let task = ThreadTask::spawn("dav2d-mqtt", health, move |stop| {
            let Some(runtime) = runtime(&loop_health) else {
                return;
            };
            runtime.block_on(drive(
                eventloop,
                &client,
                &filters,
                level,
                handed,
                &loop_health,
                &stop,
            ));
            let _ = client.try_disconnect();
            let _ = applier.join();
        })?;
        Ok(Box::new(task))
    }
}

/// Polls the event loop until `stop`: subscribes at every CONNACK, hands
/// publishes to the applier, backs off while the broker cannot be reached.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    client: &AsyncClient,
    filters: &[String],
    level: QoS,
    handed: tokio::sync::mpsc::Sender<Publish>,
    health: &BrokerHealth,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        let polled = match tokio::time::timeout(Duration::from_millis(100), eventloop.poll()).await
        {
            Ok(polled) => polled,
            Err(_) => continue,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                health.connected();
                backoff = Duration::from_millis(100);
                // A clean session forgets subscriptions: subscribe every time.
                for filter in filters {
                    if let Err(error) = client.subscribe(filter.clone(), level).await {
                        health.failed(format!("subscribing to {filter}: {error}"));
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // A full queue stops reading here: the broker holds the rest.
                if handed.send(publish).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(error) => {
                health.failed(error.to_string());
                tracing::warn!(%error, "The MQTT broker connection failed; retrying.");
                let mut waited = Duration::ZERO;
                while waited < backoff && !stop.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    waited += Duration::from_millis(50);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Applies messages in arrival order; acknowledges each after it was applied.
fn apply(
    mut received: tokio::sync::mpsc::Receiver<Publish>,
    client: &AsyncClient,
    intake: &Intake,
    config: &MqttSourceConfig,
    health: &BrokerHealth,
) {
    while let Some(publish) = received.blocking_recv() {
        let delivered = intake.deliver(
            &config.subscriptions,
            &publish.topic,
            &publish.payload,
            health,
        );
        if delivered.is_none() {
            // Not applied: unacknowledged, the broker sends it again.
            continue;
        }
        if publish.qos != QoS::AtMostOnce {
            // Acknowledged once applied (or refused for good: a bad payload
            // would only come back).
            let mut tries = 0;
            while client.try_ack(&publish).is_err() && tries < 100 {
                std::thread::sleep(Duration::from_millis(5));
                tries += 1;
            }
        }
    }
}
