//! The cluster member: joins at start (the intake forwards from then on,
//! and `/state` reads the keys other instances own from the latest-value
//! bucket), then keeps its leases: it says it is alive in the members
//! bucket, renews the partitions it owns with compare-and-set, takes free
//! ones up to its fair share, and applies each owned partition (see
//! `partition.rs`). Beside it, the latest values and alert states of the
//! keys it owns go to the replicated bucket (see `latest.rs`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dav2d_component::{Context, Intake, Running, Source, StartError, ThreadTask};
use futures_util::StreamExt;

use crate::config::ClusterConfig;
use crate::partition::PartitionTask;
use crate::shared::{Reads, Shared};
use crate::{CHECKPOINTS, Forwarder, LATEST, LEASES, MEMBERS, STREAM};

/// The `cluster` member, a source: what it applies comes from the
/// partitions it owns.
#[derive(Clone, Debug)]
pub struct ClusterMember {
    pub(crate) config: ClusterConfig,
}

impl Source for ClusterMember {
    fn name(&self) -> &str {
        "cluster"
    }

    fn kind(&self) -> &'static str {
        "cluster"
    }

    fn start(self: Box<Self>, context: Context) -> Result<Box<dyn Running>, StartError> {
        let config = self.config;
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("dav2d-cluster-io")
                .enable_all()
                .build()
                .map_err(|e| StartError::Other(format!("cannot start the cluster client: {e}")))?,
        );
        let joined = runtime.block_on(join(&config));
        let (client, buckets) = joined.map_err(StartError::Other)?;
        let shared = Arc::new(Shared::new(config.partitions));
        // The forwarder keeps the client runtime alive: the intake forwards
        // for as long as any source runs, whichever stops first.
        let forwarder = Forwarder::start(client.clone(), Arc::clone(&runtime), config.partitions);
        context
            .intake
            .set_forward(Arc::new(forwarder))
            .map_err(StartError::Other)?;
        context
            .intake
            .set_cluster_reads(Arc::new(Reads {
                shared: Arc::clone(&shared),
                latest: buckets.latest.clone(),
                runtime: runtime.handle().clone(),
            }))
            .map_err(StartError::Other)?;
        let updates = crate::latest::subscribe(context.graph()).map_err(StartError::Other)?;
        shared.health.connected();
        let intake = context.intake.clone();
        let task_shared = Arc::clone(&shared);
        let task = ThreadTask::spawn("dav2d-cluster", shared, move |stop| {
            let jetstream = {
                let _inside = runtime.enter();
                async_nats::jetstream::new(client)
            };
            let publisher = crate::latest::Publisher {
                updates,
                shared: Arc::clone(&task_shared),
                jetstream: jetstream.clone(),
                runtime: runtime.handle().clone(),
                every: config.publish_every,
            }
            .start(Arc::clone(&stop));
            let member = Member {
                config,
                buckets,
                intake,
                jetstream,
                shared: task_shared,
                owned: BTreeMap::new(),
                ever: HashSet::new(),
            };
            let handle = runtime.handle().clone();
            runtime.block_on(member.run(&stop, handle));
            if let Some(publisher) = publisher {
                let _ = publisher.join();
            }
        })?;
        Ok(Box::new(task))
    }
}

/// The buckets and the input stream.
struct Buckets {
    leases: async_nats::jetstream::kv::Store,
    members: async_nats::jetstream::kv::Store,
    latest: async_nats::jetstream::kv::Store,
    checkpoints: async_nats::jetstream::object_store::ObjectStore,
    input: async_nats::jetstream::stream::Stream,
}

/// Connects and makes sure the stream and buckets exist.
async fn join(config: &ClusterConfig) -> Result<(async_nats::Client, Buckets), String> {
    // A user in the URL (`nats://user:password@host`) logs in; the
    // password never reaches a message.
    let (url, login) = dav2d_component::section::split_login(&config.url);
    let options = match &login {
        Some(login) => async_nats::ConnectOptions::with_user_and_password(
            login.user.clone(),
            login.password.clone(),
        ),
        None => async_nats::ConnectOptions::new(),
    };
    let client = options.connect(url.as_str()).await.map_err(|e| {
        format!(
            "cluster: cannot connect to {url}{}: {e}; start nats-server -js there or fix --cluster",
            login
                .as_ref()
                .map_or(String::new(), |l| format!(" as {}", l.user))
        )
    })?;
    let js = async_nats::jetstream::new(client.clone());
    let input = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.to_string(),
            subjects: vec!["dav2d.in.>".to_string()],
            num_replicas: config.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cluster: the {STREAM} stream: {e}"))?;
    // The buckets' streams are made here, as a KV bucket's are, rather than
    // with create_key_value: that asks for the account info first, whose
    // answer from a 2.9 server this client cannot read.
    let open = |name: &'static str, max_age: Duration| {
        let js = js.clone();
        let stream = async_nats::jetstream::stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            num_replicas: config.replicas,
            ..Default::default()
        };
        async move {
            js.get_or_create_stream(stream)
                .await
                .map_err(|e| format!("cluster: the {name} bucket: {e}"))?;
            js.get_key_value(name)
                .await
                .map_err(|e| format!("cluster: the {name} bucket: {e}"))
        }
    };
    let leases = open(LEASES, config.lease_ttl).await?;
    let members = open(MEMBERS, config.lease_ttl).await?;
    // Latest values live until overwritten.
    let latest = open(LATEST, Duration::ZERO).await?;
    let checkpoints = match js.get_object_store(CHECKPOINTS).await {
        Ok(store) => store,
        Err(_) => js
            .create_object_store(async_nats::jetstream::object_store::Config {
                bucket: CHECKPOINTS.to_string(),
                description: Some("dav2d partition checkpoints".to_string()),
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cluster: the {CHECKPOINTS} object store: {e}"))?,
    };
    Ok((
        client,
        Buckets {
            leases,
            members,
            latest,
            checkpoints,
            input,
        },
    ))
}

struct Member {
    config: ClusterConfig,
    buckets: Buckets,
    intake: Intake,
    jetstream: async_nats::jetstream::Context,
    shared: Arc<Shared>,
    /// Owned partitions and the tasks applying them.
    owned: BTreeMap<u32, tokio::task::JoinHandle<()>>,
    /// Partitions this instance applied at some point (never taken again:
    /// their keys' state here would be stale).
    ever: HashSet<u32>,
}

impl Member {
    async fn run(mut self, stop: &AtomicBool, runtime: tokio::runtime::Handle) {
        let started = Instant::now();
        let me = self.config.instance.clone();
        let tick = (self.config.lease_ttl / 3).max(Duration::from_millis(50));
        while !stop.load(Ordering::Acquire) {
            if let Err(error) = self
                .buckets
                .members
                .put(&me, me.clone().into_bytes().into())
                .await
            {
                self.shared
                    .health
                    .failed(format!("saying it is alive: {error}"));
            }
            // Claim only after a TTL, when every live member has said so.
            if started.elapsed() >= self.config.lease_ttl {
                self.keep_leases(&me, &runtime).await;
            }
            let until = Instant::now() + tick;
            while Instant::now() < until && !stop.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Stopping hands nothing back: the leases expire after the TTL,
        // exactly as when the process is killed.
        for (p, task) in std::mem::take(&mut self.owned) {
            self.shared.set_owned(p, false);
            task.abort();
        }
    }

    async fn keep_leases(&mut self, me: &str, runtime: &tokio::runtime::Handle) {
        let members = match self.buckets.members.keys().await {
            Ok(keys) => keys
                .filter_map(|k| async move { k.ok() })
                .count()
                .await
                .max(1),
            Err(error) => {
                self.shared
                    .health
                    .failed(format!("listing members: {error}"));
                return;
            }
        };
        let share = (self.config.partitions as usize).div_ceil(members);
        for p in 0..self.config.partitions {
            let key = format!("p{p}");
            let entry = match self.buckets.leases.entry(&key).await {
                Ok(entry) => entry,
                Err(error) => {
                    self.shared
                        .health
                        .failed(format!("reading lease {key}: {error}"));
                    continue;
                }
            };
            let live = entry.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put);
            match live {
                Some(e) if e.value.as_ref() == me.as_bytes() => {
                    let renewed = self
                        .buckets
                        .leases
                        .update(&key, me.as_bytes().to_vec().into(), e.revision)
                        .await;
                    if renewed.is_err() {
                        self.lose(p);
                    } else if !self.owned.contains_key(&p) {
                        // Ours by name from before a restart: apply it now
                        // (this process has no state for it yet), unless this
                        // process gave it up before.
                        if self.ever.contains(&p) {
                            let _ = self.buckets.leases.delete(&key).await;
                        } else {
                            self.gain(p, runtime);
                        }
                    }
                }
                Some(_) => self.lose(p),
                None => {
                    if self.owned.len() < share
                        && !self.ever.contains(&p)
                        && self
                            .buckets
                            .leases
                            .create(&key, me.as_bytes().to_vec().into())
                            .await
                            .is_ok()
                    {
                        self.gain(p, runtime);
                    }
                }
            }
        }
        self.shared.health.connected();
    }

    fn lose(&mut self, p: u32) {
        if let Some(task) = self.owned.remove(&p) {
            tracing::warn!(
                partition = p,
                "A partition's lease was lost; it is no longer applied here."
            );
            self.shared.set_owned(p, false);
            task.abort();
        }
    }

    /// Applies partition `p`: from its checkpoint, then in order.
    fn gain(&mut self, p: u32, runtime: &tokio::runtime::Handle) {
        tracing::info!(partition = p, "Took partition.");
        self.ever.insert(p);
        self.shared.set_owned(p, true);
        let task = PartitionTask {
            partition: p,
            input: self.buckets.input.clone(),
            checkpoints: self.buckets.checkpoints.clone(),
            intake: self.intake.clone(),
            jetstream: self.jetstream.clone(),
            shared: Arc::clone(&self.shared),
            every: self.config.checkpoint_every,
        };
        self.owned.insert(p, runtime.spawn(task.run()));
    }
}
