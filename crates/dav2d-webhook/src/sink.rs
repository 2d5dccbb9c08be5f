//! The webhook sink: a thread that takes transitions from the graph
//! subscription (the bounded queue) and POSTs each, retrying with backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dav2d_component::{Context, Delivery, Gauge, Health, Running, Sink, StartError, ThreadTask};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::WebhookConfig;

/// The `webhook` sink.
#[derive(Clone, Debug)]
pub struct WebhookSink {
    pub(crate) name: String,
    pub(crate) config: WebhookConfig,
}

/// What the sink reports.
#[derive(Debug, Default)]
struct WebhookHealth {
    sent: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    conflated: AtomicU64,
    /// The last failure, until a POST succeeds again.
    problem: Mutex<Option<String>>,
}

impl Health for WebhookHealth {
    fn status(&self) -> Result<(), String> {
        match &*self.problem.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(problem) => Err(problem.clone()),
            None => Ok(()),
        }
    }

    fn gauges(&self) -> Vec<Gauge> {
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            Gauge::count(
                "webhook_sent",
                "Transitions the receiver accepted",
                count(&self.sent),
            ),
            Gauge::count(
                "webhook_retries",
                "POSTs tried again after a failure",
                count(&self.retries),
            ),
            Gauge::count(
                "webhook_failed",
                "Transitions given up after every try",
                count(&self.failed),
            ),
            Gauge::count(
                "webhook_conflated",
                "Transitions superseded by a newer one of their key while the queue was full",
                count(&self.conflated),
            ),
        ]
    }
}

/// The most of a receiver's answer read (its status decides): an answer's
/// body is only read so the connection can be reused.
pub const ANSWER_LIMIT: usize = 64 << 10;

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn delivery(&self) -> Delivery {
        Delivery::Conflating
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        crate::check_url(&config.url).map_err(StartError::Other)?;
        let uri: hyper::Uri = config
            .url
            .parse()
            .map_err(|e| StartError::Other(format!("{}: {e}", self.name)))?;
        // Every constraint unless names are given.
        let names = if config.names.is_empty() {
            let graph = context.graph().lock();
            graph
                .nodes()
                .into_iter()
                .filter(|n| n.kind == dav2d_core::NodeKind::Constraint)
                .map(|n| n.name)
                .collect()
        } else {
            config.names.clone()
        };
        let updates = context.subscribe_outputs(&self.name, &names, config.queue)?;
        // One worker of its own: the client's connection tasks run between
        // POSTs too (a connection whose answer was cut short closes at once).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dav2d-webhook-io")
            .enable_all()
            .build()
            .map_err(|e| StartError::Other(format!("cannot start the webhook client: {e}")))?;
        let health = Arc::new(WebhookHealth::default());
        let worker = Arc::clone(&health);
        let task = ThreadTask::spawn("dav2d-webhook", health, move |stop| {
            let client: Client<_, Full<Bytes>> = {
                let _inside = runtime.enter();
                Client::builder(TokioExecutor::new()).build_http()
            };
            let post = Post {
                client,
                uri,
                config,
                health: worker,
                runtime,
                long_answers: dav2d_component::Throttle::new(std::time::Duration::from_secs(60)),
            };
            // A POST may retry for seconds: what waits at stop is left.
            dav2d_component::drain(&updates, &stop, dav2d_component::AtStop::Drop, |update| {
                post.health
                    .conflated
                    .store(updates.conflated(), Ordering::Relaxed);
                if update.transition.is_some() {
                    post.send(&update, &stop);
                }
            });
        })?;
        Ok(Box::new(task))
    }
}

struct Post {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    config: WebhookConfig,
    health: Arc<WebhookHealth>,
    runtime: tokio::runtime::Runtime,
    /// Logs an answer cut at [`ANSWER_LIMIT`] once a minute at most.
    long_answers: dav2d_component::Throttle,
}

impl Post {
    /// POSTs one transition, trying up to `tries` times with backoff
    /// (100 ms, doubling, at most 5 s), or until the sink stops.
    fn send(&self, update: &dav2d_core::Update, stop: &AtomicBool) {
        let body = crate::body(update, self.config.format).to_string();
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=self.config.tries.max(1) {
            match self.try_once(&body) {
                Ok(()) => {
                    self.health.sent.fetch_add(1, Ordering::Relaxed);
                    *self
                        .health
                        .problem
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = None;
                    return;
                }
                Err(error) => {
                    *self
                        .health
                        .problem
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("POST {} failed: {error}", self.config.url));
                    if attempt == self.config.tries.max(1) || stop.load(Ordering::Acquire) {
                        break;
                    }
                    self.health.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.health.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            url = %self.config.url,
            name = %update.name,
            key = %update.key,
            "A transition could not be delivered to the webhook; it is counted in dav2d_webhook_failed."
        );
    }

    fn try_once(&self, body: &str) -> Result<(), String> {
        let request = hyper::Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "dav2d")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let sent = self.runtime.block_on(async {
            tokio::time::timeout(self.config.timeout, async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                // Read the answer so the connection can be reused, but at
                // most ANSWER_LIMIT of it: past that (an endless body) the
                // connection is dropped, and only the status counts.
                let read = Limited::new(response.into_body(), ANSWER_LIMIT)
                    .collect()
                    .await;
                if read.is_err()
                    && let Some(more) = self.long_answers.ready()
                {
                    tracing::warn!(
                        limit = ANSWER_LIMIT,
                        more_since_last_line = more,
                        "The webhook receiver's answer is longer than dav2d reads; the rest is dropped with its connection."
                    );
                }
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("the receiver answered {status}"))
                }
            })
            .await
        });
        match sent {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
        }
    }
}
