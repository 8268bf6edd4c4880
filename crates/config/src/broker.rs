//! The broker's configuration: Kafka's `server.properties` keys, read from a
//! file, then `STROM_CFG_*` environment variables, then `--override`
//! arguments (later sources win), validated into a typed [`BrokerConfig`].
//!
//! Unknown keys are reported as warnings; an invalid value stops start-up
//! with an error naming the key and what it accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::broker_keys::BROKER_CONFIGS;
use crate::definition::{find, ConfigType, ConfigValue};
use crate::error::ConfigError;
use crate::listener::{parse_listeners, parse_protocol_map, Listener};
use crate::sasl::{listener_sasl_config, SaslListenerConfig};
use crate::source::{ConfigSource, ConfigSynonym, DescribedConfig};
use crate::ssl::{listener_override_base, listener_ssl_config, SecurityProtocol, SslConfig};
use crate::topic::LogDefaults;

/// Prefix of environment variables that set broker keys:
/// `STROM_CFG_LOG_RETENTION_HOURS=1` sets `log.retention.hours=1`.
pub const ENV_PREFIX: &str = "STROM_CFG_";

/// A role of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// Serves clients and hosts partitions.
    Broker,
    /// Votes in the metadata quorum.
    Controller,
}

/// How followers fetch from leaders (`replica.*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetchConfig {
    /// `replica.lag.time.max.ms`.
    pub lag_time_max_ms: u64,
    /// `replica.fetch.max.bytes`.
    pub max_bytes: i32,
    /// `replica.fetch.response.max.bytes`.
    pub response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`.
    pub wait_max_ms: i32,
    /// `replica.fetch.backoff.ms`.
    pub backoff_ms: u64,
    /// `replica.socket.timeout.ms`.
    pub socket_timeout_ms: u64,
}

impl Default for ReplicaFetchConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            lag_time_max_ms: 30_000,
            max_bytes: 1_048_576,
            response_max_bytes: 10_485_760,
            wait_max_ms: 500,
            backoff_ms: 1_000,
            socket_timeout_ms: 30_000,
        }
    }
}

/// A member of `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    /// Node id.
    pub id: i32,
    /// Host.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// Where the raw key/value pairs came from, later ones winning.
#[derive(Debug, Default, Clone)]
pub struct ConfigInputs {
    /// Contents of the properties file, if one was given.
    pub file: BTreeMap<String, String>,
    /// `STROM_CFG_*` variables, already mapped to keys.
    pub env: BTreeMap<String, String>,
    /// `--override KEY=VALUE` arguments.
    pub overrides: BTreeMap<String, String>,
    /// The process environment, for `${env:NAME}` variables in values
    /// (see [`crate::providers`]).
    pub environment: BTreeMap<String, String>,
}

impl ConfigInputs {
    /// Reads a properties file.
    pub fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(crate::properties::parse_properties(&text))
    }

    /// Maps `STROM_CFG_LOG_RETENTION_HOURS=1` style variables to keys.
    pub fn from_env_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> BTreeMap<String, String> {
        vars.into_iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(ENV_PREFIX)?;
                Some((rest.to_ascii_lowercase().replace('_', "."), v))
            })
            .collect()
    }

    /// Parses `KEY=VALUE` override arguments.
    pub fn parse_overrides(args: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
        args.iter()
            .map(|a| {
                a.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| ConfigError::Inconsistent {
                        key: a.clone(),
                        message: "overrides are written KEY=VALUE".into(),
                    })
            })
            .collect()
    }

    fn merged(&self) -> BTreeMap<String, String> {
        let mut m = self.file.clone();
        m.extend(self.env.clone());
        m.extend(self.overrides.clone());
        m
    }
}

/// The validated broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (or `broker.id`).
    pub node_id: i32,
    /// `cluster.id`.
    pub cluster_id: Option<String>,
    /// `process.roles`.
    pub process_roles: Vec<ProcessRole>,
    /// `listeners`, all of them.
    pub listeners: Vec<Listener>,
    /// Client-facing listeners as advertised (controller listeners excluded).
    pub advertised_listeners: Vec<Listener>,
    /// `controller.listener.names`.
    pub controller_listener_names: Vec<String>,
    /// Each listener's security protocol (`listener.security.protocol.map`).
    pub listener_protocols: Vec<(String, SecurityProtocol)>,
    /// The TLS settings of each SSL and SASL_SSL listener.
    pub listener_ssl: Vec<SslConfig>,
    /// The SASL settings of each SASL_PLAINTEXT and SASL_SSL listener.
    pub listener_sasl: Vec<SaslListenerConfig>,
    /// `controller.quorum.voters`; empty for a one-voter quorum of this node.
    pub controller_quorum_voters: Vec<QuorumVoter>,
    /// `controller.quorum.election.timeout.ms`.
    pub controller_quorum_election_timeout_ms: u64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: u64,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `max.request.partition.size.limit`: partitions per
    /// DescribeTopicPartitions response.
    pub max_request_partition_size_limit: i32,
    /// How followers fetch (`replica.*`).
    pub replica_fetch: ReplicaFetchConfig,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_secs: u64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `inter.broker.listener.name`.
    pub inter_broker_listener_name: String,
    /// `log.dirs` (or `log.dir`).
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `queued.max.requests`: requests held at once, broker-wide.
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes`: request bytes held at once, broker-wide;
    /// `None` (the key ≤ 0) is unlimited.
    pub queued_max_request_bytes: Option<u64>,
    /// `queued.max.fetch.response.bytes` (Strom's own): fetched record
    /// bytes held for consumers at once, broker-wide; `None` (the key ≤ 0)
    /// is unlimited.
    pub queued_max_fetch_response_bytes: Option<u64>,
    /// `connections.max.idle.ms`.
    pub connections_max_idle_ms: u64,
    /// `max.connections`.
    pub max_connections: usize,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`: (host, count) in the order given;
    /// hosts are IP addresses or hostnames, resolved by the server.
    pub max_connections_per_ip_overrides: Vec<(String, usize)>,
    /// `max.connection.creation.rate`, connections per second.
    pub max_connection_creation_rate_per_sec: u32,
    /// `socket.send.buffer.bytes` (≤ 0: OS default).
    pub socket_send_buffer_bytes: i32,
    /// `socket.receive.buffer.bytes` (≤ 0: OS default).
    pub socket_receive_buffer_bytes: i32,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.flush.scheduler.interval.ms`.
    pub log_flush_scheduler_interval_ms: i64,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub log_flush_offset_checkpoint_interval_ms: u64,
    /// `log.flush.start.offset.checkpoint.interval.ms`.
    pub log_flush_start_offset_checkpoint_interval_ms: u64,
    /// `broker.rack`.
    pub broker_rack: Option<String>,
    /// `http.listener`; `None` when disabled.
    pub http_listener: Option<String>,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: u64,
    /// The group coordinator's keys (`group.*`, `offsets.*`).
    pub group: GroupKeys,
    /// Topic-level defaults derived from the `log.*` keys.
    pub log_defaults: LogDefaults,
    /// Keys that were set explicitly, with their raw values.
    explicitly_set: BTreeMap<String, String>,
}

/// The group coordinator's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKeys {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.max.size`.
    pub group_max_size: usize,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `offsets.commit.timeout.ms`.
    pub offsets_commit_timeout_ms: u64,
}

/// A loaded configuration plus the warnings to log.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: BrokerConfig,
    /// Unknown keys and similar non-fatal findings.
    pub warnings: Vec<String>,
}

struct Reader<'a> {
    set: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    fn value(&self, name: &str) -> Result<Option<ConfigValue>, ConfigError> {
        // A listener's override is parsed as the key it overrides, and has
        // no default of its own.
        let (def, default) = match listener_override_base(name) {
            Some(base) => (find(BROKER_CONFIGS, base), None),
            None => {
                let def = find(BROKER_CONFIGS, name);
                (def, def.and_then(|d| d.default))
            }
        };
        let def = def.ok_or_else(|| ConfigError::Inconsistent {
            key: name.to_string(),
            message: "not a broker configuration".into(),
        })?;
        match self.set.get(name).map(String::as_str).or(default) {
            Some(raw) => def.parse(raw).map_err(|e| rename_key(e, name)).map(Some),
            None => Ok(None),
        }
    }
    /// The effective text of a key (set or default), checked against its
    /// definition.
    fn raw(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.value(name)?;
        let default = match listener_override_base(name) {
            Some(_) => None,
            None => find(BROKER_CONFIGS, name).and_then(|d| d.default),
        };
        Ok(self.set.get(name).cloned().or(default.map(String::from)))
    }
    fn int(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        Ok(match self.value(name)? {
            Some(ConfigValue::Int(v)) => Some(v),
            _ => None,
        })
    }
    fn req_int(&self, name: &str) -> Result<i64, ConfigError> {
        self.int(name)?.ok_or_else(|| ConfigError::Inconsistent {
            key: name.to_string(),
            message: "a value is required".into(),
        })
    }
    fn boolean(&self, name: &str) -> Result<bool, ConfigError> {
        Ok(matches!(self.value(name)?, Some(ConfigValue::Bool(true))))
    }
    fn text(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(match self.value(name)? {
            Some(ConfigValue::Text(t)) if !t.is_empty() => Some(t),
            _ => None,
        })
    }
    fn list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        Ok(match self.value(name)? {
            Some(ConfigValue::List(items)) => items,
            _ => Vec::new(),
        })
    }
}

/// `e` about `key` (a listener override parsed as its base key).
fn rename_key(e: ConfigError, key: &str) -> ConfigError {
    match e {
        ConfigError::Invalid { value, message, .. } => ConfigError::Invalid {
            key: key.to_string(),
            value,
            message,
        },
        other => other,
    }
}

/// Parses `max.connections.per.ip.overrides`: `host:count,host:count`,
/// split at each entry's last `:` so a bare IPv6 address works too.
pub fn parse_per_ip_overrides(text: &str) -> Result<Vec<(String, usize)>, ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid {
        key: "max.connections.per.ip.overrides".into(),
        value: text.to_string(),
        message: message.to_string(),
    };
    let mut overrides = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected host:count,host:count"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("an entry has no host before its ':'"));
        }
        let count: usize = count
            .trim()
            .parse()
            .map_err(|_| invalid("each count must be a number from 0 to 2147483647"))?;
        if count > i32::MAX as usize {
            return Err(invalid("each count must be a number from 0 to 2147483647"));
        }
        overrides.push((host.to_string(), count));
    }
    Ok(overrides)
}

fn inconsistent(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Inconsistent {
        key: key.to_string(),
        message: message.into(),
    }
}

fn parse_voters(items: &[String]) -> Result<Vec<QuorumVoter>, ConfigError> {
    items
        .iter()
        .map(|item| {
            let bad = || ConfigError::Invalid {
                key: "controller.quorum.voters".into(),
                value: item.clone(),
                message: "expected id@host:port".into(),
            };
            let (id, addr) = item.split_once('@').ok_or_else(bad)?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            Ok(QuorumVoter {
                id: id.trim().parse().map_err(|_| bad())?,
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port: port.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl BrokerConfig {
    /// Loads and validates a configuration.
    pub fn load(inputs: &ConfigInputs) -> Result<LoadedConfig, ConfigError> {
        let mut set = inputs.merged();
        crate::providers::resolve_variables(&mut set, &inputs.environment)?;
        let mut warnings = Vec::new();
        for key in set.keys() {
            if find(BROKER_CONFIGS, key).is_none()
                && listener_override_base(key).is_none()
                && !crate::providers::is_provider_key(key)
            {
                warnings.push(format!("unknown configuration {key} is ignored"));
            }
        }
        let r = Reader { set: &set };
        // Parse every known key that was set, so a bad value fails even when
        // nothing reads it yet.
        for key in set.keys() {
            if find(BROKER_CONFIGS, key).is_some() || listener_override_base(key).is_some() {
                r.value(key)?;
            }
        }

        let node_id = match (r.int("broker.id")?, set.contains_key("node.id")) {
            (Some(b), true) if Some(b) != r.int("node.id")? => {
                return Err(inconsistent("broker.id", "broker.id and node.id differ"));
            }
            (Some(b), false) => b,
            _ => r.req_int("node.id")?,
        } as i32;

        let process_roles: Vec<ProcessRole> = r
            .list("process.roles")?
            .iter()
            .map(|s| {
                if s == "broker" {
                    ProcessRole::Broker
                } else {
                    ProcessRole::Controller
                }
            })
            .collect();
        if process_roles.is_empty() {
            return Err(inconsistent(
                "process.roles",
                "at least one of broker, controller is required",
            ));
        }

        let listeners = parse_listeners("listeners", &r.list("listeners")?)?;
        let controller_listener_names: Vec<String> = r
            .list("controller.listener.names")?
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        let protocol_map = parse_protocol_map(
            "listener.security.protocol.map",
            &r.list("listener.security.protocol.map")?,
        )?;
        let mut listener_protocols = Vec::new();
        let mut listener_ssl = Vec::new();
        let mut listener_sasl = Vec::new();
        for l in &listeners {
            let protocol = protocol_map
                .iter()
                .find(|(n, _)| *n == l.name)
                .map(|(_, p)| p.as_str())
                .ok_or_else(|| {
                    inconsistent(
                        "listener.security.protocol.map",
                        format!("listener {} has no security protocol", l.name),
                    )
                })?;
            let protocol = match protocol {
                "PLAINTEXT" => SecurityProtocol::Plaintext,
                "SSL" => SecurityProtocol::Ssl,
                "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
                "SASL_SSL" => SecurityProtocol::SaslSsl,
                other => {
                    return Err(inconsistent(
                        "listener.security.protocol.map",
                        format!(
                            "listener {} uses {other}; the protocols are PLAINTEXT, SSL, \
                             SASL_PLAINTEXT and SASL_SSL",
                            l.name
                        ),
                    ))
                }
            };
            if protocol != SecurityProtocol::Plaintext
                && controller_listener_names.contains(&l.name)
            {
                return Err(inconsistent(
                    "listener.security.protocol.map",
                    format!(
                        "controller listener {} uses {}; Strom's controller quorum speaks \
                         PLAINTEXT only so far",
                        l.name,
                        protocol.name()
                    ),
                ));
            }
            if protocol.uses_tls() {
                listener_ssl.push(listener_ssl_config(&l.name, |key| r.raw(key))?);
            }
            if protocol.uses_sasl() {
                listener_sasl.push(listener_sasl_config(&l.name, |key| r.raw(key))?);
            }
            listener_protocols.push((l.name.clone(), protocol));
        }
        let client_listeners: Vec<Listener> = listeners
            .iter()
            .filter(|l| !controller_listener_names.contains(&l.name))
            .cloned()
            .collect();
        let is_broker = process_roles.contains(&ProcessRole::Broker);
        let is_controller = process_roles.contains(&ProcessRole::Controller);
        if is_broker && client_listeners.is_empty() {
            return Err(inconsistent(
                "listeners",
                "a broker needs at least one non-controller listener",
            ));
        }
        // Kafka's rules for dedicated roles.
        let voters = parse_voters(&r.list("controller.quorum.voters")?)?;
        let is_voter = voters.iter().any(|v| v.id == node_id);
        if !is_controller {
            if voters.is_empty() {
                return Err(inconsistent(
                    "controller.quorum.voters",
                    "a broker-only node needs the controllers it follows",
                ));
            }
            if is_voter {
                return Err(inconsistent(
                    "controller.quorum.voters",
                    format!("node {node_id} is a voter, so process.roles must include controller"),
                ));
            }
            if listeners
                .iter()
                .any(|l| controller_listener_names.contains(&l.name))
            {
                return Err(inconsistent(
                    "listeners",
                    "controller listeners belong on nodes with the controller role",
                ));
            }
        }
        if is_controller && !voters.is_empty() && !is_voter {
            return Err(inconsistent(
                "controller.quorum.voters",
                format!("node {node_id} has the controller role but is not one of the voters"),
            ));
        }
        if is_controller && !voters.is_empty() && client_listeners.len() == listeners.len() {
            return Err(inconsistent(
                "listeners",
                "a controller in a quorum needs a listener named in controller.listener.names",
            ));
        }
        if !is_broker && !client_listeners.is_empty() {
            return Err(inconsistent(
                "listeners",
                "a controller-only node listens on controller listeners only",
            ));
        }
        if !is_broker && voters.is_empty() {
            return Err(inconsistent(
                "process.roles",
                "a single node with no voters configured must be a broker too",
            ));
        }

        let advertised_listeners = match r.value("advertised.listeners")? {
            Some(ConfigValue::List(items)) if !items.is_empty() => {
                let adv = parse_listeners("advertised.listeners", &items)?;
                for a in &adv {
                    if !listeners.iter().any(|l| l.name == a.name) {
                        return Err(inconsistent(
                            "advertised.listeners",
                            format!("{} is not a name in listeners", a.name),
                        ));
                    }
                    if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                        return Err(inconsistent(
                            "advertised.listeners",
                            format!("{a} cannot be advertised; give a host clients can reach"),
                        ));
                    }
                }
                adv.into_iter()
                    .filter(|l| !controller_listener_names.contains(&l.name))
                    .collect()
            }
            _ => client_listeners
                .iter()
                .map(|l| {
                    let mut a = l.clone();
                    if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                        a.host = local_hostname();
                    }
                    a
                })
                .collect(),
        };

        let inter_broker_listener_name = match r.text("inter.broker.listener.name")? {
            Some(n) => {
                let n = n.to_ascii_uppercase();
                if !client_listeners.iter().any(|l| l.name == n) {
                    return Err(inconsistent(
                        "inter.broker.listener.name",
                        format!("{n} is not a non-controller listener"),
                    ));
                }
                n
            }
            None => client_listeners
                .first()
                .map(|l| l.name.clone())
                .unwrap_or_default(),
        };
        // Followers and the controller's links reach other brokers over
        // the inter-broker listener, in PLAINTEXT so far: a cluster of more
        // than one node needs it to be a PLAINTEXT listener.
        let inter_broker_secured = listener_protocols
            .iter()
            .any(|(n, p)| *n == inter_broker_listener_name && *p != SecurityProtocol::Plaintext);
        if inter_broker_secured && (voters.len() > 1 || !is_voter) {
            return Err(inconsistent(
                "inter.broker.listener.name",
                format!(
                    "{inter_broker_listener_name} is not a PLAINTEXT listener; Strom's brokers \
                     do not connect to each other over TLS or SASL yet: name a PLAINTEXT listener"
                ),
            ));
        }

        let log_dirs: Vec<PathBuf> = match r.list("log.dirs")? {
            dirs if !dirs.is_empty() => dirs.into_iter().map(PathBuf::from).collect(),
            _ => vec![PathBuf::from(
                r.text("log.dir")?.unwrap_or_else(|| "./data".into()),
            )],
        };

        let usize_of = |name: &str| -> Result<usize, ConfigError> {
            usize::try_from(r.req_int(name)?)
                .map_err(|_| inconsistent(name, "must not be negative"))
        };
        let u64_of = |name: &str| -> Result<u64, ConfigError> {
            u64::try_from(r.req_int(name)?).map_err(|_| inconsistent(name, "must not be negative"))
        };

        // Kafka's rule: a budget smaller than the largest frame could never
        // admit that frame.
        let socket_request_max_bytes = usize_of("socket.request.max.bytes")?;
        let queued_max_request_bytes = u64::try_from(r.req_int("queued.max.request.bytes")?)
            .ok()
            .filter(|&b| b > 0);
        if let Some(budget) = queued_max_request_bytes {
            if budget < socket_request_max_bytes as u64 {
                return Err(inconsistent(
                    "queued.max.request.bytes",
                    format!(
                        "{budget} is smaller than socket.request.max.bytes={socket_request_max_bytes}; \
                         it must be at least that (or -1 for unlimited)"
                    ),
                ));
            }
        }

        let queued_max_fetch_response_bytes =
            u64::try_from(r.req_int("queued.max.fetch.response.bytes")?)
                .ok()
                .filter(|&b| b > 0);

        let max_connections_per_ip = usize_of("max.connections.per.ip")?;
        let overrides_text = r
            .text("max.connections.per.ip.overrides")?
            .unwrap_or_default();
        let max_connections_per_ip_overrides = parse_per_ip_overrides(&overrides_text)?;
        // Kafka's rule: 0 per IP shuts everyone out unless some hosts are
        // listed.
        if max_connections_per_ip == 0 && max_connections_per_ip_overrides.is_empty() {
            return Err(inconsistent(
                "max.connections.per.ip",
                "0 is allowed only with max.connections.per.ip.overrides listing the hosts that may connect",
            ));
        }

        let http_listener = r.text("http.listener")?;
        let log_defaults = LogDefaults::from_broker(&set)?;
        let cluster_id = r.text("cluster.id")?;
        if let Some(id) = &cluster_id {
            let valid = id.len() == 22
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(ConfigError::Invalid {
                    key: "cluster.id".into(),
                    value: id.clone(),
                    message: "expected 22 characters of URL-safe base64 (see `strom random-uuid`)"
                        .into(),
                });
            }
        }
        let config = BrokerConfig {
            node_id,
            cluster_id,
            process_roles,
            listeners,
            advertised_listeners,
            controller_listener_names,
            controller_quorum_voters: voters,
            controller_quorum_election_timeout_ms: u64_of("controller.quorum.election.timeout.ms")?,
            broker_session_timeout_ms: u64_of("broker.session.timeout.ms")?,
            auto_leader_rebalance_enable: r.boolean("auto.leader.rebalance.enable")?,
            max_request_partition_size_limit: r.req_int("max.request.partition.size.limit")? as i32,
            replica_fetch: ReplicaFetchConfig {
                lag_time_max_ms: u64_of("replica.lag.time.max.ms")?,
                max_bytes: r.req_int("replica.fetch.max.bytes")? as i32,
                response_max_bytes: r.req_int("replica.fetch.response.max.bytes")? as i32,
                wait_max_ms: r.req_int("replica.fetch.wait.max.ms")? as i32,
                backoff_ms: u64_of("replica.fetch.backoff.ms")?,
                socket_timeout_ms: u64_of("replica.socket.timeout.ms")?,
            },
            leader_imbalance_check_interval_secs: u64_of(
                "leader.imbalance.check.interval.seconds",
            )?,
            broker_heartbeat_interval_ms: u64_of("broker.heartbeat.interval.ms")?,
            inter_broker_listener_name,
            listener_protocols,
            listener_ssl,
            listener_sasl,
            log_dirs,
            num_partitions: r.req_int("num.partitions")? as i32,
            default_replication_factor: r.req_int("default.replication.factor")? as i16,
            auto_create_topics_enable: r.boolean("auto.create.topics.enable")?,
            delete_topic_enable: r.boolean("delete.topic.enable")?,
            socket_request_max_bytes,
            fetch_max_bytes: r.req_int("fetch.max.bytes")? as i32,
            queued_max_requests: usize_of("queued.max.requests")?,
            queued_max_request_bytes,
            queued_max_fetch_response_bytes,
            connections_max_idle_ms: u64_of("connections.max.idle.ms")?,
            max_connections: usize_of("max.connections")?,
            max_connections_per_ip,
            max_connections_per_ip_overrides,
            max_connection_creation_rate_per_sec: u32::try_from(
                r.req_int("max.connection.creation.rate")?,
            )
            .map_err(|_| inconsistent("max.connection.creation.rate", "must not be negative"))?,
            socket_send_buffer_bytes: r.req_int("socket.send.buffer.bytes")? as i32,
            socket_receive_buffer_bytes: r.req_int("socket.receive.buffer.bytes")? as i32,
            log_retention_check_interval_ms: u64_of("log.retention.check.interval.ms")?,
            log_flush_scheduler_interval_ms: r.req_int("log.flush.scheduler.interval.ms")?,
            log_flush_offset_checkpoint_interval_ms: u64_of(
                "log.flush.offset.checkpoint.interval.ms",
            )?,
            log_flush_start_offset_checkpoint_interval_ms: u64_of(
                "log.flush.start.offset.checkpoint.interval.ms",
            )?,
            broker_rack: r.text("broker.rack")?,
            http_listener,
            producer_id_expiration_ms: r.req_int("producer.id.expiration.ms")?,
            producer_id_expiration_check_interval_ms: u64_of(
                "producer.id.expiration.check.interval.ms",
            )?,
            group: GroupKeys {
                offsets_topic_num_partitions: r.req_int("offsets.topic.num.partitions")? as i32,
                offsets_topic_replication_factor: r.req_int("offsets.topic.replication.factor")?
                    as i16,
                offsets_topic_segment_bytes: r.req_int("offsets.topic.segment.bytes")? as i32,
                group_min_session_timeout_ms: r.req_int("group.min.session.timeout.ms")? as i32,
                group_max_session_timeout_ms: r.req_int("group.max.session.timeout.ms")? as i32,
                group_initial_rebalance_delay_ms: u64_of("group.initial.rebalance.delay.ms")?,
                group_max_size: usize_of("group.max.size")?,
                offset_metadata_max_bytes: usize_of("offset.metadata.max.bytes")?,
                offsets_retention_ms: r
                    .req_int("offsets.retention.minutes")?
                    .saturating_mul(60_000),
                offsets_retention_check_interval_ms: u64_of("offsets.retention.check.interval.ms")?,
                offsets_commit_timeout_ms: u64_of("offsets.commit.timeout.ms")?,
            },
            log_defaults,
            explicitly_set: set.clone(),
        };
        Ok(LoadedConfig { config, warnings })
    }

    /// Single-node defaults with nothing set, as `strom` with no arguments.
    pub fn single_node_defaults() -> Result<LoadedConfig, ConfigError> {
        Self::load(&ConfigInputs::default())
    }

    /// Whether this process hosts partitions and serves clients.
    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Broker)
    }

    /// Whether this process is a controller (a voter of the quorum).
    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }

    /// Listeners clients connect to (controller listeners excluded).
    pub fn client_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// Every broker key with its value and source, for DescribeConfigs.
    pub fn describe(&self) -> Vec<DescribedConfig> {
        BROKER_CONFIGS
            .iter()
            .map(|def| {
                let (value, source) = match self.explicitly_set.get(def.name) {
                    Some(v) => (Some(v.clone()), ConfigSource::StaticBrokerConfig),
                    None => (def.default.map(String::from), ConfigSource::DefaultConfig),
                };
                let sensitive = def.kind == ConfigType::Password;
                let value = if sensitive { None } else { value };
                DescribedConfig {
                    name: def.name.to_string(),
                    value: value.clone(),
                    source,
                    read_only: true,
                    sensitive,
                    config_type: def.kind.id(),
                    documentation: def.doc,
                    synonyms: vec![ConfigSynonym {
                        name: def.name.to_string(),
                        value,
                        source,
                    }],
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
