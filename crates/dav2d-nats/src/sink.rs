//! The NATS sink: publishes every update of the names it serves as the
//! JSON of `/events` to a subject made from its template, through JetStream
//! with `Nats-Msg-Id` when asked (so republishing after a crash is deduplicated).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dav2d_component::{
    AtStop, BrokerHealth, Context, Delivery, Running, Sink, StartError, ThreadTask, drain,
};

use crate::config::NatsSinkConfig;
use crate::source::{connect, runtime};

/// How long one publish (and its JetStream ack) may take while running.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the stop may spend publishing what waits and flushing.
const STOP_BUDGET: Duration = Duration::from_secs(3);

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
            let client = match runtime.block_on(connect(
                &config.url,
                &config.auth,
                config.tls.as_ref(),
                &task_health,
            )) {
                Ok(client) => client,
                Err(error) => return task_health.failed(error),
            };
            task_health.connected();
            let jetstream = config
                .jetstream
                .then(|| async_nats::jetstream::new(client.clone()));
            // What waits at stop goes out before the flush, within
            // STOP_BUDGET in all: a server that is away cannot hold the stop.
            let mut stop_deadline: Option<Instant> = None;
            let mut undelivered = 0u64;
            drain(&updates, &stop, AtStop::Drain, |update| {
                let budget = if stop.load(Ordering::Acquire) {
                    let deadline =
                        *stop_deadline.get_or_insert_with(|| Instant::now() + STOP_BUDGET);
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    PUBLISH_TIMEOUT
                };
                if budget.is_zero() {
                    undelivered += 1;
                    return;
                }
                let (_, json) = dav2d_wire::update_json(&update);
                let subject = config.subject.topic_for(&update.name, &update.key);
                let payload: Vec<u8> = json.to_string().into_bytes();
                let mut headers = async_nats::HeaderMap::new();
                let id = format!("{}/{}/{}", update.name, update.key, update.seq);
                headers.insert("Nats-Msg-Id", id.as_str());
                let publish = async {
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
                };
                let sent = runtime
                    .block_on(async { tokio::time::timeout(budget, publish).await })
                    .unwrap_or_else(|_| {
                        Err(format!("no answer within {} s", budget.as_secs_f64()))
                    });
                match sent {
                    Ok(()) => task_health.message(0),
                    Err(error) => {
                        task_health.message(1);
                        if stop.load(Ordering::Acquire) {
                            undelivered += 1;
                        } else {
                            tracing::warn!(%subject, %error, "Publishing to NATS failed.");
                        }
                    }
                }
            });
            let left = stop_deadline
                .map_or(STOP_BUDGET, |d| d.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(100));
            let flushed =
                runtime.block_on(async { tokio::time::timeout(left, client.flush()).await });
            if undelivered > 0 || !matches!(flushed, Ok(Ok(()))) {
                tracing::warn!(
                    undelivered,
                    url = %config.url,
                    "The NATS sink stopped without delivering everything: {undelivered} updates were not published and what the client still buffered may not have reached the server (it did not answer within {} s).",
                    STOP_BUDGET.as_secs()
                );
            }
        })?;
        Ok(Box::new(task))
    }
}
