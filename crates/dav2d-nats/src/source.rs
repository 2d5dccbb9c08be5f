//! The NATS source: its own thread and client runtime; reads core subjects
//! or a JetStream durable consumer and applies each message in order,
//! acknowledging JetStream messages after apply (or after they are durable).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dav2d_component::{
    BrokerHealth, Context, Durability, Intake, Running, Source, StartError, ThreadTask,
};
use futures_util::StreamExt;

use crate::config::{Ack, Auth, NatsSourceConfig};

/// The `nats` source.
#[derive(Clone, Debug)]
pub struct NatsSource {
    pub(crate) name: String,
    pub(crate) config: NatsSourceConfig,
}

/// Connects with retries and reports connection events into `health`.
pub(crate) async fn connect(
    url: &str,
    auth: &Auth,
    tls: Option<&dav2d_component::BrokerTls>,
    health: &Arc<BrokerHealth>,
) -> Result<async_nats::Client, String> {
    let events = Arc::clone(health);
    let options = match auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Login(login) => async_nats::ConnectOptions::with_user_and_password(
            login.user.clone(),
            login.password.clone(),
        ),
        Auth::Token(token) => async_nats::ConnectOptions::with_token(token.0.clone()),
    };
    let options = match tls {
        Some(tls) => options
            .require_tls(true)
            .tls_client_config((*tls.client_config()?).clone()),
        None => options,
    };
    options
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let events = Arc::clone(&events);
            async move {
                match event {
                    async_nats::Event::Connected => events.connected(),
                    async_nats::Event::Disconnected => events.failed("disconnected".to_string()),
                    // A connect attempt that failed (a refused login among
                    // them): the client tries again, and health says why
                    // until it is in.
                    async_nats::Event::ClientError(error) => {
                        events.failed(format!("cannot connect: {error}"))
                    }
                    async_nats::Event::ServerError(
                        error @ async_nats::ServerError::AuthorizationViolation,
                    ) => events.failed(format!("{error}; check the user and password")),
                    other => tracing::info!(event = %other, "NATS connection event."),
                }
            }
        })
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// A client runtime of the connector's own: the connector's thread blocks
/// on its loop (and blocks in the engine between awaits), while the
/// client's connection task runs on the runtime's one worker.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dav2d-nats-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the NATS client's runtime: {e}"))
}

impl Source for NatsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let health = Arc::new(BrokerHealth::default());
        let task_health = Arc::clone(&health);
        let intake = context.intake.clone();
        let durability = Arc::clone(&context.durability);
        let task = ThreadTask::spawn("dav2d-nats", health, move |stop| {
            let runtime = match runtime() {
                Ok(runtime) => runtime,
                Err(error) => return task_health.failed(error),
            };
            runtime.block_on(async {
                if let Err(error) = run(&config, &intake, &durability, &task_health, &stop).await {
                    tracing::error!(%error, "The NATS source stopped.");
                    task_health.failed(error);
                }
            });
        })?;
        Ok(Box::new(task))
    }
}

/// Acknowledges a JetStream message (a failure means it is redelivered).
async fn acknowledge(message: &async_nats::jetstream::Message) {
    if let Err(error) = message.ack().await {
        tracing::warn!(%error, "A JetStream acknowledgement failed; the message will be redelivered.");
    }
}

async fn run(
    config: &NatsSourceConfig,
    intake: &Intake,
    durability: &Durability,
    health: &Arc<BrokerHealth>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let client = connect(&config.url, &config.auth, config.tls.as_ref(), health).await?;
    health.connected();
    match &config.jetstream {
        None => {
            let mut subscribers = Vec::new();
            for s in &config.subjects {
                subscribers.push(
                    client
                        .subscribe(s.topic.filter())
                        .await
                        .map_err(|e| format!("subscribing to {}: {e}", s.topic.filter()))?,
                );
            }
            let mut messages = futures_util::stream::select_all(subscribers);
            while !stop.load(Ordering::Acquire) {
                match tokio::time::timeout(Duration::from_millis(100), messages.next()).await {
                    Err(_) => {}
                    Ok(None) => return Err("the NATS subscriptions ended".to_string()),
                    Ok(Some(message)) => {
                        intake.deliver(
                            &config.subjects,
                            message.subject.as_str(),
                            &message.payload,
                            health,
                        );
                    }
                }
            }
        }
        Some(js) => {
            let context = async_nats::jetstream::new(client.clone());
            let subjects: Vec<String> = config.subjects.iter().map(|s| s.topic.filter()).collect();
            let stream = context
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: js.stream.clone(),
                    subjects: subjects.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("JetStream stream {}: {e}", js.stream))?;
            let wanted = async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(js.durable.clone()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ack_wait: js.ack_wait,
                ..Default::default()
            };
            let mut consumer = stream
                .get_or_create_consumer(&js.durable, wanted.clone())
                .await
                .map_err(|e| format!("JetStream consumer {}: {e}", js.durable))?;
            if consumer.cached_info().config.ack_wait != js.ack_wait {
                // A consumer made before with another ack_wait takes this one.
                match stream.create_consumer(wanted).await {
                    Ok(updated) => consumer = updated,
                    Err(error) => tracing::warn!(
                        durable = %js.durable,
                        %error,
                        "The JetStream consumer keeps its former ack_wait; delete it to change it."
                    ),
                }
            }
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| format!("JetStream consumer {}: {e}", js.durable))?;
            // Messages applied and waiting for the flush that makes them
            // durable (`ack: durable`), oldest first, with their marks.
            let mut waiting: std::collections::VecDeque<(u64, async_nats::jetstream::Message)> =
                std::collections::VecDeque::new();
            while !stop.load(Ordering::Acquire) {
                if !waiting.is_empty() {
                    durability.want_flush();
                    let through = durability.durable_through().unwrap_or(0);
                    while waiting.front().is_some_and(|(mark, _)| *mark <= through) {
                        if let Some((_, message)) = waiting.pop_front() {
                            acknowledge(&message).await;
                        }
                    }
                }
                let message =
                    match tokio::time::timeout(Duration::from_millis(20), messages.next()).await {
                        Err(_) => continue,
                        Ok(None) => return Err("the JetStream consumer ended".to_string()),
                        Ok(Some(Err(error))) => {
                            health.failed(error.to_string());
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                        Ok(Some(Ok(message))) => message,
                    };
                health.connected();
                let Some(settled) = intake.deliver(
                    &config.subjects,
                    message.subject.as_str(),
                    &message.payload,
                    health,
                ) else {
                    // Not applied: left unacknowledged, JetStream redelivers it.
                    continue;
                };
                if js.ack == Ack::Durable && settled > 0 {
                    waiting.push_back((settled, message));
                } else {
                    acknowledge(&message).await;
                }
            }
        }
    }
    Ok(())
}
