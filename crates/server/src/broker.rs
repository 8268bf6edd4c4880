//! Starting and stopping a broker: the order in which the parts come up and
//! go down.
//!
//! Start ([`Broker::start`], one line per phase): answer probes; identify
//! the cluster (cluster id, `meta.properties`); open the log directories;
//! start the metadata quorum (voters serve their controller listeners,
//! broker-only nodes link to the voters); register this broker and
//! heartbeat; load and recover the partition logs and reconcile them with
//! the metadata; assemble the shared state (the group coordinator takes
//! the `__consumer_offsets` partitions this broker leads); start the
//! background tasks (metadata follower, ISR updates, fetchers, log
//! maintenance); wait to be unfenced; bind the client listeners and serve. Stop: stop
//! accepting, stop the group coordinator (members waiting for a rebalance
//! are told NOT_COORDINATOR), let connections finish their current
//! request, stop the background tasks, then flush and close every log and
//! write the clean-shutdown markers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strom_config::BrokerConfig;
use strom_controller::quorum::QuorumConfig;
use strom_controller::raft_types::ControllerNode;
use strom_controller::{Controller, ControllerConfig, QUORUM_START_TIMEOUT};
use strom_coordinator::{GroupCoordinator, ProducerIdManager};
use strom_metadata::{BrokerEndpoint, BrokerRegistration, MetadataImage};
use strom_replication::replica_fetcher::FetcherConfig;
use strom_replication::ReplicaManager;
use strom_runtime::shutdown;
use strom_security::{SaslAuthenticator, TlsListener};
use strom_storage::log_manager::discover_cluster_id;
use strom_storage::{LogManager, MaintenanceIntervals};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::connection_quotas::{ConnectionLimits, ConnectionQuotas};
use crate::handlers;
use crate::http::{serve_http, HttpEndpoint};
use crate::lifecycle::BrokerLifecycle;
use crate::listener::run_listener;
use crate::metrics::BrokerMetrics;
use crate::state::BrokerState;

/// Why the broker could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// Log directories or logs.
    #[error("storage: {0}")]
    Storage(#[from] strom_storage::StorageError),
    /// The metadata log.
    #[error("metadata: {0}")]
    Controller(#[from] strom_controller::ControllerError),
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Address.
        address: String,
        /// OS error.
        source: std::io::Error,
    },
    /// A blocking start-up task failed.
    #[error("start-up task failed: {0}")]
    Task(String),
    /// The cluster id is missing or does not match.
    #[error("cluster id: {0}")]
    ClusterId(String),
    /// The controller refused to register this broker.
    #[error("cannot register with the controller: {0}")]
    Registration(strom_controller::ApiError),
    /// The controller did not unfence this broker in time.
    #[error("the controller did not unfence this broker within {0:?}")]
    NotUnfenced(Duration),
    /// The metrics could not be set up (a bug: their names are fixed).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// An SSL listener's key or trust store cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] strom_security::SecurityError),
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    state: Arc<BrokerState>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    listeners: Vec<(String, SocketAddr)>,
}

/// Runs start-up and shutdown disk work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StartError> {
    strom_runtime::blocking::run(f)
        .await
        .map_err(StartError::Task)
}

impl Broker {
    /// Starts a broker with `config`, phase by phase; each phase's function
    /// says what it needs from the ones before it.
    pub async fn start(config: BrokerConfig) -> Result<Self, StartError> {
        let mut run = Running::new(&config)?;
        run.serve_probes(&config).await?;
        let cluster_id = identify_cluster(&config).await?;
        let log_manager = open_log_dirs(&config, &cluster_id).await?;
        let controller = run.start_quorum(&config, &log_manager, &cluster_id).await?;
        let lifecycle = run.register(&config, &controller).await?;
        let (replica_manager, image) =
            load_partitions(&config, &log_manager, &controller, &lifecycle).await?;
        let state = assemble_state(
            config,
            cluster_id,
            controller,
            replica_manager,
            lifecycle,
            Arc::clone(&run.metrics),
            image,
        );
        run.start_background_tasks(&state, &log_manager);
        wait_until_unfenced(&state).await?;
        run.open_client_listeners(&state).await?;
        Ok(run.serve(state))
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Applies `topics` in the background (see [`crate::provisioning`]).
    pub fn provision_topics(&mut self, topics: Vec<crate::provisioning::TopicSpec>) {
        if topics.is_empty() {
            return;
        }
        self.tasks.spawn(crate::provisioning::provision_topics(
            Arc::clone(&self.state),
            topics,
            self.shutdown.subscribe(),
        ));
    }

    /// Bound listener addresses, by listener name.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// Stops the broker cleanly: connections finish their current request,
    /// then every log is flushed and closed and the clean-shutdown markers
    /// are written.
    pub async fn shutdown(mut self) -> Result<(), StartError> {
        tracing::info!("shutting down");
        self.state.controlled_shutdown().await;
        // While this node still answers its peers: a leader of the
        // metadata quorum hands leadership over rather than leaving the
        // voters to wait out an election timeout.
        self.state.controller.quorum().hand_over_leadership().await;
        let _ = self.shutdown.send(true);
        self.state.replica_manager.stop_fetchers();
        // Members waiting in JoinGroup or SyncGroup get NOT_COORDINATOR now
        // rather than holding their connections open past the drain.
        self.state.groups.shutdown();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, drain)
            .await
            .is_err()
        {
            tracing::warn!("connections did not finish in time; closing logs anyway");
            self.tasks.abort_all();
        }
        // The partition logs are closed and checkpointed even when the
        // quorum could not stop cleanly (a full disk under its log, say):
        // shutdown never stops half-way; the first error is reported.
        let quorum_stopped = self.state.controller.shutdown().await;
        if let Err(e) = &quorum_stopped {
            tracing::error!(error = %e, "the metadata quorum did not stop cleanly; closing the logs anyway");
        }
        let state = Arc::clone(&self.state);
        blocking(move || -> Result<(), StartError> {
            state
                .replica_manager
                .log_manager()
                .shutdown(strom_runtime::clock::now_ms())?;
            Ok(())
        })
        .await??;
        quorum_stopped?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// What a starting broker has running so far: the tasks it spawned, the
/// listeners it bound, and the signals that will stop them.
struct Running {
    shutdown: watch::Sender<bool>,
    shutdown_rx: watch::Receiver<bool>,
    tasks: JoinSet<()>,
    /// Turns to the broker's state once it serves clients; connections
    /// accepted before wait for it, probes report not ready until then.
    serving: watch::Sender<Option<Arc<BrokerState>>>,
    listeners: Vec<(String, SocketAddr)>,
    connection_quotas: Arc<ConnectionQuotas>,
    metrics: Arc<BrokerMetrics>,
    /// The TLS of each SSL and SASL_SSL listener, by name.
    tls: std::collections::BTreeMap<String, Arc<TlsListener>>,
    /// The SASL of each SASL_PLAINTEXT and SASL_SSL listener, by name.
    sasl: std::collections::BTreeMap<String, Arc<SaslAuthenticator>>,
}

impl Running {
    fn new(config: &BrokerConfig) -> Result<Self, StartError> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (serving, _) = watch::channel(None);
        let metrics = Arc::new(BrokerMetrics::new()?);
        // Phase 0: the SSL listeners' stores, so a bad one stops start-up
        // before anything else happens.
        let mut tls = std::collections::BTreeMap::new();
        for ssl in &config.listener_ssl {
            tls.insert(ssl.listener.clone(), TlsListener::new(ssl.clone())?);
        }
        let sasl = config
            .listener_sasl
            .iter()
            .map(|c| (c.listener.clone(), Arc::new(SaslAuthenticator::new(c))))
            .collect();
        Ok(Self {
            tls,
            sasl,
            shutdown,
            shutdown_rx,
            tasks: JoinSet::new(),
            serving,
            listeners: Vec::new(),
            connection_quotas: ConnectionQuotas::new(
                ConnectionLimits::from_config(config),
                metrics.connection_quotas(),
            ),
            metrics,
        })
    }

    /// Phase 1: the HTTP endpoint, so probes are answered from the start
    /// (not ready until the broker serves).
    async fn serve_probes(&mut self, config: &BrokerConfig) -> Result<(), StartError> {
        if let Some(address) = &config.http_listener {
            let (tcp, _) = bind_address(address, "http", "/metrics, /livez, /readyz").await?;
            let endpoint = HttpEndpoint {
                metrics: Arc::clone(&self.metrics),
                serving: self.serving.subscribe(),
            };
            self.tasks
                .spawn(serve_http(tcp, endpoint, self.shutdown_rx.clone()));
        }
        Ok(())
    }

    /// Phase 4: the metadata quorum and this node's part in it: a voter
    /// serves its controller listeners; a broker-only node links to the
    /// voters and becomes an observer. Returns once the quorum has a leader.
    async fn start_quorum(
        &mut self,
        config: &BrokerConfig,
        log_manager: &LogManager,
        cluster_id: &str,
    ) -> Result<Arc<Controller>, StartError> {
        let quorum_config = quorum_config(config);
        let voter_nodes: Vec<ControllerNode> = quorum_config.voters.values().cloned().collect();
        let quorum_local_address = quorum_config.local_address;
        let controller = Arc::new(
            Controller::start(
                log_manager.first_dir(),
                log_manager.had_clean_shutdown(),
                cluster_id.to_string(),
                controller_config(config),
                quorum_config,
            )
            .await?,
        );
        if config.is_controller() {
            for l in config
                .listeners
                .iter()
                .filter(|l| config.controller_listener_names.contains(&l.name))
            {
                let (tcp, local) = bind(l, "controllers").await?;
                self.listeners.push((l.name.clone(), local));
                self.tasks
                    .spawn(strom_controller::rpc_server::serve_controller_rpc(
                        tcp,
                        Arc::clone(&controller),
                        self.shutdown_rx.clone(),
                    ));
            }
        } else {
            // A broker-only node follows the metadata log as an observer:
            // it links to every voter's controller listener and the
            // leader replicates to it over that link (observer_links); it
            // accepts no quorum RPC on a listener of its own.
            let endpoint = config
                .advertised_listeners
                .iter()
                .find(|l| l.name == config.inter_broker_listener_name)
                .map(|l| ControllerNode {
                    host: l.host.clone(),
                    port: l.port,
                })
                .ok_or_else(|| StartError::Task("no advertised inter-broker listener".into()))?;
            self.tasks
                .spawn(strom_controller::observer_links::run_observer_links(
                    Arc::clone(&controller),
                    voter_nodes,
                    quorum_local_address,
                    self.shutdown_rx.clone(),
                ));
            controller
                .add_observer(endpoint, QUORUM_START_TIMEOUT)
                .await
                .map_err(StartError::Registration)?;
        }
        let leader = controller
            .quorum()
            .wait_for_leader(QUORUM_START_TIMEOUT)
            .await?;
        tracing::info!(leader, "the metadata quorum has a leader");
        self.tasks
            .spawn(Arc::clone(&controller).run_broker_sessions(self.shutdown_rx.clone()));
        self.tasks
            .spawn(Arc::clone(&controller).run_leader_rebalance(self.shutdown_rx.clone()));
        tokio::spawn(controller.quorum().clone().log_changes());
        tokio::spawn(controller.quorum().clone().run_leader_lease());
        Ok(controller)
    }

    /// Phase 5: registration with the active controller (a broker; a
    /// controller-only node hosts nothing and does not register, its broker
    /// epoch staying −1), then heartbeats.
    async fn register(
        &mut self,
        config: &BrokerConfig,
        controller: &Arc<Controller>,
    ) -> Result<Arc<BrokerLifecycle>, StartError> {
        let lifecycle = Arc::new(BrokerLifecycle::new(
            config.node_id,
            Duration::from_millis(config.broker_heartbeat_interval_ms.max(1)),
            Duration::from_millis(config.broker_session_timeout_ms.max(1)),
        ));
        if !config.is_broker() {
            return Ok(lifecycle);
        }
        let registration = BrokerRegistration {
            broker_id: config.node_id,
            incarnation_id: Uuid::new_v4(),
            broker_epoch: 0,
            endpoints: config
                .advertised_listeners
                .iter()
                .map(|l| BrokerEndpoint {
                    name: l.name.clone(),
                    host: l.host.clone(),
                    port: l.port,
                    security_protocol: "PLAINTEXT".into(),
                })
                .collect(),
            rack: config.broker_rack.clone(),
            fenced: false,
        };
        // After a crash the old registration lives until its session ends:
        // the controller refuses a second one until then, as KRaft does.
        let registration_deadline = tokio::time::Instant::now() + QUORUM_START_TIMEOUT;
        let broker_epoch = loop {
            match controller.register_broker(registration.clone()).await {
                Ok(epoch) => break epoch,
                Err(e)
                    if e.code == strom_protocol::ErrorCode::DuplicateBrokerRegistration
                        && tokio::time::Instant::now() < registration_deadline =>
                {
                    tracing::info!("waiting for this broker's previous registration to expire");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(StartError::Registration(e)),
            }
        };
        lifecycle.registered(broker_epoch);
        self.tasks.spawn(Arc::clone(&lifecycle).run_heartbeats(
            Arc::clone(controller),
            controller.subscribe(),
            self.shutdown_rx.clone(),
        ));
        Ok(lifecycle)
    }

    /// Phase 8: what runs in the background: replica fetchers, following
    /// the metadata, proposing ISR changes, log maintenance, reclaiming
    /// fetch response room from clients that do not read.
    fn start_background_tasks(&mut self, state: &Arc<BrokerState>, log_manager: &Arc<LogManager>) {
        let image = state.image.borrow().clone();
        state.replica_manager.sync_fetchers(
            &image,
            &state.config.inter_broker_listener_name,
            &fetcher_config(&state.config, state.lifecycle.broker_epoch()),
        );
        self.tasks
            .spawn(follow_metadata(Arc::clone(state), self.shutdown_rx.clone()));
        if state.config.is_broker() {
            self.tasks.spawn(crate::isr_updates::run_isr_updates(
                Arc::clone(state),
                self.shutdown_rx.clone(),
            ));
        }
        self.tasks.spawn(Arc::clone(log_manager).run_maintenance(
            maintenance_intervals(&state.config),
            self.shutdown_rx.clone(),
        ));
        if let Some(budget) = state.replica_manager.fetch_response_budget() {
            self.tasks.spawn(crate::fetch_memory::run_reclaimer(
                Arc::clone(budget),
                Arc::clone(&state.response_holders),
                state.metrics.fetch_response_evictions(),
                self.shutdown_rx.clone(),
            ));
        }
    }

    /// Phase 10: the client listeners (connections wait for the state).
    async fn open_client_listeners(&mut self, state: &BrokerState) -> Result<(), StartError> {
        for l in state.config.client_listeners() {
            let (tcp, local) = bind(l, "Kafka clients").await?;
            self.listeners.push((l.name.clone(), local));
            let tls = self.tls.get(&l.name).cloned();
            if let Some(tls) = &tls {
                self.tasks
                    .spawn(Arc::clone(tls).watch(self.shutdown_rx.clone()));
            }
            self.tasks.spawn(run_listener(
                tcp,
                Arc::from(l.name.as_str()),
                tls,
                self.sasl.get(&l.name).cloned(),
                self.serving.subscribe(),
                Arc::clone(&self.connection_quotas),
                self.shutdown_rx.clone(),
            ));
        }
        Ok(())
    }

    /// Last: clients are served.
    fn serve(self, state: Arc<BrokerState>) -> Broker {
        self.serving.send_replace(Some(Arc::clone(&state)));
        tracing::info!(node_id = state.config.node_id, roles = ?state.config.process_roles, "Strom node started");
        Broker {
            state,
            shutdown: self.shutdown,
            tasks: self.tasks,
            listeners: self.listeners,
        }
    }
}

/// Phase 2: the cluster id, from the log directories (formatted before) or
/// the configuration, refusing a mismatch.
async fn identify_cluster(config: &BrokerConfig) -> Result<String, StartError> {
    let discovered = blocking({
        let dirs = config.log_dirs.clone();
        move || discover_cluster_id(&dirs)
    })
    .await??;
    match (discovered, &config.cluster_id) {
        (Some(found), Some(wanted)) if found != *wanted => Err(StartError::ClusterId(format!(
            "the log directories belong to cluster {found}, but cluster.id is {wanted}"
        ))),
        (Some(found), _) => Ok(found),
        (None, Some(wanted)) => {
            tracing::info!(cluster_id = %wanted, "formatting new log directories with cluster.id");
            Ok(wanted.clone())
        }
        (None, None) if config.controller_quorum_voters.len() > 1 => Err(StartError::ClusterId(
            "a quorum of several voters needs the same cluster id on every node: set \
             cluster.id, or format the log directories with `strom format --cluster-id`"
                .into(),
        )),
        (None, None) => {
            let id = strom_protocol::uuid_text::uuid_to_base64(&Uuid::new_v4());
            tracing::info!(cluster_id = %id, "formatting new log directories");
            Ok(id)
        }
    }
}

/// Phase 3: the log directories, locked and identified.
async fn open_log_dirs(
    config: &BrokerConfig,
    cluster_id: &str,
) -> Result<Arc<LogManager>, StartError> {
    let log_manager = blocking({
        let (dirs, node_id, cluster_id) = (
            config.log_dirs.clone(),
            config.node_id,
            cluster_id.to_string(),
        );
        move || LogManager::open(&dirs, node_id, &cluster_id)
    })
    .await??;
    tracing::info!(
        node_id = config.node_id,
        cluster_id,
        had_clean_shutdown = log_manager.had_clean_shutdown(),
        "opening log directories"
    );
    Ok(Arc::new(log_manager))
}

/// Phase 6: the partition logs, loaded (and recovered) and brought in line
/// with the metadata image it returns (everything after starts from that
/// same image, so the metadata follower applies whatever comes later);
/// offline replicas are reported with every heartbeat from then on.
async fn load_partitions(
    config: &BrokerConfig,
    log_manager: &Arc<LogManager>,
    controller: &Controller,
    lifecycle: &BrokerLifecycle,
) -> Result<(Arc<ReplicaManager>, Arc<MetadataImage>), StartError> {
    let mut replica_manager = ReplicaManager::new(
        config.node_id,
        Arc::clone(log_manager),
        config.log_defaults.clone(),
    );
    if let Some(max_bytes) = config.queued_max_fetch_response_bytes {
        replica_manager = replica_manager
            .with_fetch_response_budget(strom_runtime::byte_budget::ByteBudget::new(max_bytes));
    }
    let replica_manager = Arc::new(replica_manager);
    {
        let replica_manager = Arc::clone(&replica_manager);
        lifecycle.report_offline_replicas(Box::new(move || replica_manager.offline_replicas()));
    }
    let image = controller.image();
    let summary = blocking({
        let (rm, image) = (Arc::clone(&replica_manager), Arc::clone(&image));
        move || {
            let summary = rm.load_logs(&image);
            rm.reconcile(&image);
            summary
        }
    })
    .await??;
    tracing::info!(
        logs = summary.logs,
        segments = summary.report.segments,
        recovered_segments = summary.report.recovered_segments,
        truncated_bytes = summary.report.truncated_bytes,
        stray_logs = summary.stray_logs,
        offline_logs = summary.offline_logs,
        "loaded partition logs"
    );
    Ok((replica_manager, image))
}

/// Phase 7: the state every request handler shares, with the group
/// coordinator taking the `__consumer_offsets` partitions this broker
/// leads.
fn assemble_state(
    config: BrokerConfig,
    cluster_id: String,
    controller: Arc<Controller>,
    replica_manager: Arc<ReplicaManager>,
    lifecycle: Arc<BrokerLifecycle>,
    metrics: Arc<BrokerMetrics>,
    image: Arc<MetadataImage>,
) -> Arc<BrokerState> {
    let node_id = config.node_id;
    let (image_tx, image_rx) = watch::channel(Arc::clone(&image));
    let groups = Arc::new(GroupCoordinator::new(
        config.group.clone(),
        node_id,
        Arc::clone(&replica_manager),
        image_rx,
    ));
    groups.sync_leadership(&image);
    let mut registry = crate::registry::HandlerRegistry::new();
    handlers::register_all(&mut registry);
    let producer_ids =
        ProducerIdManager::new(node_id, lifecycle.broker_epoch(), Arc::clone(&controller));
    let request_budget = crate::request_budget::RequestBudget::new(
        crate::request_budget::RequestBudgetLimits {
            max_requests: config.queued_max_requests,
            max_bytes: config.queued_max_request_bytes,
        },
        metrics.request_budget(),
    );
    Arc::new(BrokerState {
        config,
        cluster_id,
        controller,
        replica_manager,
        producer_ids,
        lifecycle,
        groups,
        registry,
        image: image_tx,
        metrics,
        request_budget,
        response_holders: Arc::default(),
    })
}

/// Phase 9: as in KRaft, clients are served once the controller has
/// unfenced this broker (it has caught up with the metadata), and once its
/// own heartbeat has heard so (the image says it a moment before; writes
/// are accepted only after both).
async fn wait_until_unfenced(state: &BrokerState) -> Result<(), StartError> {
    if !state.config.is_broker() {
        return Ok(());
    }
    let node_id = state.config.node_id;
    if state
        .wait_for_image(
            |img| img.broker(node_id).is_some_and(|b| !b.fenced),
            QUORUM_START_TIMEOUT,
        )
        .await
        .is_none()
    {
        return Err(StartError::NotUnfenced(QUORUM_START_TIMEOUT));
    }
    tokio::time::timeout(QUORUM_START_TIMEOUT, async {
        while state.lifecycle.is_fenced() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .map_err(|_| StartError::NotUnfenced(QUORUM_START_TIMEOUT))
}

/// How the controller runs, from the broker's configuration.
fn controller_config(config: &BrokerConfig) -> ControllerConfig {
    ControllerConfig {
        node_id: config.node_id,
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
        delete_topic_enable: config.delete_topic_enable,
        unclean_leader_election_enable: strom_config::TopicConfig::resolve(
            &config.log_defaults,
            &Default::default(),
        )
        .map(|c| c.unclean_leader_election_enable)
        .unwrap_or(false),
        broker_session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
        leader_imbalance_check_interval: config
            .auto_leader_rebalance_enable
            .then(|| Duration::from_secs(config.leader_imbalance_check_interval_secs)),
    }
}

/// How the metadata quorum runs, from the broker's configuration.
fn quorum_config(config: &BrokerConfig) -> QuorumConfig {
    let election_ms = config.controller_quorum_election_timeout_ms.max(10);
    QuorumConfig {
        node_id: config.node_id as u64,
        voters: config
            .controller_quorum_voters
            .iter()
            .map(|v| {
                (
                    v.id as u64,
                    ControllerNode {
                        host: v.host.clone(),
                        port: v.port,
                    },
                )
            })
            .collect(),
        heartbeat_interval: Duration::from_millis((election_ms / 5).max(5)),
        election_timeout: (
            Duration::from_millis(election_ms),
            Duration::from_millis(election_ms * 2),
        ),
        // Connections to controllers leave from this node's controller
        // listener address, or a broker-only node's broker listener.
        local_address: config
            .listeners
            .iter()
            .find(|l| config.controller_listener_names.contains(&l.name))
            .or_else(|| {
                config
                    .listeners
                    .iter()
                    .find(|l| l.name == config.inter_broker_listener_name)
            })
            .and_then(|l| l.host.parse::<std::net::IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified()),
    }
}

/// How often log maintenance runs, from the broker's configuration.
fn maintenance_intervals(c: &BrokerConfig) -> MaintenanceIntervals {
    MaintenanceIntervals {
        retention_check: Duration::from_millis(c.log_retention_check_interval_ms.max(1)),
        flush_check: Duration::from_millis(
            u64::try_from(c.log_flush_scheduler_interval_ms)
                .unwrap_or(u64::MAX)
                .clamp(1, 1000),
        ),
        checkpoint: Duration::from_millis(c.log_flush_offset_checkpoint_interval_ms.max(1)),
        producer_expiration_check: Duration::from_millis(
            c.producer_id_expiration_check_interval_ms.max(1),
        ),
        producer_expiration_ms: c.producer_id_expiration_ms,
    }
}

/// How this broker's followers fetch from leaders: as this broker, in
/// the epoch of its registration (leaders check it).
fn fetcher_config(config: &BrokerConfig, broker_epoch: i64) -> FetcherConfig {
    FetcherConfig {
        node_id: config.node_id,
        broker_epoch,
        local_address: config
            .listeners
            .iter()
            .find(|l| l.name == config.inter_broker_listener_name)
            .and_then(|l| l.host.parse::<std::net::IpAddr>().ok())
            .filter(|ip| !ip.is_unspecified()),
        fetch: config.replica_fetch,
    }
}

/// Binds `listener`, which serves `whom`; returns it with its bound
/// address.
async fn bind(
    listener: &strom_config::Listener,
    whom: &str,
) -> Result<(TcpListener, SocketAddr), StartError> {
    bind_address(&listener.bind_address(), &listener.name, whom).await
}

/// Binds `address` for the listener called `name`, which serves `whom`;
/// returns it with its bound address.
async fn bind_address(
    address: &str,
    name: &str,
    whom: &str,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let failed = |source| StartError::Bind {
        address: address.to_string(),
        source,
    };
    let tcp = TcpListener::bind(address).await.map_err(failed)?;
    let local = tcp.local_addr().map_err(failed)?;
    tracing::info!(listener = %name, address = %local, "listening for {whom}");
    Ok((tcp, local))
}

/// How long shutdown waits for connections to finish their requests.
const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies every new controller image to the hosted partitions, then
/// publishes it to the handlers.
async fn follow_metadata(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut images = state.controller.subscribe();
    loop {
        tokio::select! {
            _ = shutdown::signalled(&mut shutdown) => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
                let image = images.borrow_and_update().clone();
                let rm = Arc::clone(&state.replica_manager);
                let applied = Arc::clone(&image);
                if let Err(e) = strom_runtime::blocking::run(move || rm.reconcile(&applied)).await {
                    tracing::error!(error = %e, "metadata reconciliation failed");
                }
                state.replica_manager.sync_fetchers(
                    &image,
                    &state.config.inter_broker_listener_name,
                    &fetcher_config(&state.config, state.lifecycle.broker_epoch()),
                );
                state.groups.sync_leadership(&image);
                state.image.send_replace(image);
            }
        }
    }
}
