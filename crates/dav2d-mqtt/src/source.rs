//! The MQTT source: one client thread driving the event loop (subscribing
//! again at every CONNACK, backing off while the broker is away) and one
//! thread applying messages in arrival order, acknowledging QoS 1 messages
//! only once applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dav2d_component::{Context, Intake, Running, Source, StartError, ThreadTask, Throttle};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc::{Receiver, Sender};

use crate::config::{MQTT_MAX_PACKET, MqttSourceConfig};
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

/// A client's options as both the source and the sink make them: the
/// broker, the client id, the login, TLS, and packets of any size MQTT
/// carries (each side refuses what is over its own `max_message`).
pub(crate) fn client_options(
    client_id: &str,
    (host, port): &(String, u16),
    login: Option<&dav2d_component::section::Login>,
    tls: Option<&dav2d_component::BrokerTls>,
) -> Result<MqttOptions, StartError> {
    let mut options = MqttOptions::new(client_id, host, *port);
    if let Some(login) = login {
        options.set_credentials(&login.user, &login.password);
    }
    if let Some(tls) = tls {
        let client = tls.client_config().map_err(StartError::Other)?;
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(client),
        ));
    }
    options.set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET);
    Ok(options)
}

/// Room for every acknowledgement the broker can be owed (a 16-bit packet
/// id each) and the subscriptions: acknowledging never waits for the event
/// loop, so it can never be lost for want of room.
const REQUESTS: usize = (1 << 16) + 64;

/// How long the engine may take no message before `/healthz` says so.
const STALL: Duration = Duration::from_secs(10);

impl Source for MqttSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let mut options = client_options(
            &config.client_id,
            &config.broker,
            config.login.as_ref(),
            config.tls.as_ref(),
        )?;
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(config.clean_session)
            .set_manual_acks(true);
        let (client, eventloop) = AsyncClient::new(options, REQUESTS);
        let health = Arc::new(BrokerHealth::default());
        let (handed, received) = tokio::sync::mpsc::channel::<Publish>(config.queue.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let applier = {
            let (client, health, intake) =
                (client.clone(), Arc::clone(&health), context.intake.clone());
            let (config, stop) = (config.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("dav2d-mqtt-apply".to_string())
                .spawn(move || apply(received, &client, &intake, &config, &health, &stop))
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
        let task = ThreadTask::spawn("dav2d-mqtt", health, move |stopping| {
            let Some(runtime) = runtime(&loop_health) else {
                stop.store(true, Ordering::Release);
                return;
            };
            let connection = Connection {
                client: &client,
                filters: &filters,
                level,
                health: &loop_health,
                stop: &stopping,
            };
            let mut eventloop = runtime.block_on(connection.drive(eventloop, handed));
            // The applier finishes the message in hand (what waits in the
            // queue is left unacknowledged: the broker sends it again), then
            // its acknowledgements go out before the connection closes.
            stop.store(true, Ordering::Release);
            let _ = applier.join();
            let _ = client.try_disconnect();
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
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

/// What the event loop's driver works with.
struct Connection<'a> {
    client: &'a AsyncClient,
    filters: &'a [String],
    level: QoS,
    health: &'a BrokerHealth,
    stop: &'a AtomicBool,
}

impl Connection<'_> {
    /// Polls the event loop until stop: subscribes at every CONNACK, hands
    /// publishes to the applier in order, backs off while the broker cannot
    /// be reached. A poll is never cut short (which could lose a packet it
    /// was writing); only stop ends one.
    async fn drive(
        &self,
        mut eventloop: rumqttc::EventLoop,
        handed: Sender<Publish>,
    ) -> rumqttc::EventLoop {
        let mut backoff = Duration::from_millis(100);
        loop {
            let polled = tokio::select! {
                biased;
                () = stopped(self.stop) => return eventloop,
                polled = eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.health.connected();
                    backoff = Duration::from_millis(100);
                    // A clean session forgets subscriptions: subscribe every time.
                    for filter in self.filters {
                        if let Err(error) = self.client.try_subscribe(filter.clone(), self.level) {
                            self.health
                                .failed(format!("subscribing to {filter}: {error}"));
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // A full queue stops reading here (the broker holds the
                    // rest); the applier's acknowledgements wait in the
                    // request channel, which has room for all of them.
                    if !self.hand(&handed, publish).await {
                        return eventloop;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    self.health.failed(error.to_string());
                    tracing::warn!(%error, "The MQTT broker connection failed; retrying.");
                    tokio::select! {
                        () = stopped(self.stop) => return eventloop,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Hands `publish` to the applier, waiting for room; says so in the
    /// health while the engine takes nothing for [`STALL`]. False at stop.
    async fn hand(&self, handed: &Sender<Publish>, publish: Publish) -> bool {
        let started = Instant::now();
        let mut said = false;
        let handed_over = loop {
            tokio::select! {
                biased;
                () = stopped(self.stop) => break false,
                permit = handed.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(publish);
                        break true;
                    }
                    Err(_) => break false,
                },
                () = tokio::time::sleep(STALL.saturating_sub(started.elapsed())), if !said => {
                    said = true;
                    let why = format!(
                        "stalled: the engine has taken no message for {} s; {} wait in the queue and the broker holds the rest",
                        STALL.as_secs(),
                        handed.max_capacity()
                    );
                    tracing::warn!("MQTT source {why}.");
                    self.health.stalled(Some(why));
                }
            }
        };
        if said {
            self.health.stalled(None);
        }
        handed_over
    }
}

/// Ends once `stop` is set (checked every 50 ms).
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Applies messages in arrival order; acknowledges each after it was
/// applied, exactly once. A message over `max_message` is refused (counted
/// and logged) and acknowledged: it would only come back.
fn apply(
    mut received: Receiver<Publish>,
    client: &AsyncClient,
    intake: &Intake,
    config: &MqttSourceConfig,
    health: &BrokerHealth,
    stop: &AtomicBool,
) {
    let oversized = Throttle::new(Duration::from_secs(10));
    while let Some(publish) = received.blocking_recv() {
        if stop.load(Ordering::Acquire) {
            // Stopping: left unacknowledged for the broker to send again.
            break;
        }
        if publish.payload.len() > config.max_message {
            health.message(1);
            if let Some(held) = oversized.ready() {
                tracing::warn!(
                    topic = %publish.topic,
                    bytes = publish.payload.len(),
                    max_message = config.max_message,
                    more_since_last_line = held,
                    "An MQTT message over max_message was refused (and acknowledged, so the broker does not send it again); raise max_message (or limits.value_size) to take it."
                );
            }
        } else if intake
            .deliver(
                &config.subscriptions,
                &publish.topic,
                &publish.payload,
                health,
            )
            .is_none()
        {
            // Not applied: unacknowledged, the broker sends it again.
            continue;
        }
        if publish.qos == QoS::AtMostOnce {
            continue;
        }
        // The request channel has room for every acknowledgement the broker
        // can be owed, so this waits only if the event loop is gone.
        while let Err(error) = client.try_ack(&publish) {
            if stop.load(Ordering::Acquire) {
                tracing::warn!(%error, "An MQTT acknowledgement could not be sent at stop; the broker sends the message again.");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
