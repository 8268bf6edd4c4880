//! The table of every broker key Strom reads: Kafka's `server.properties`
//! keys (and a few of Strom's own, marked "Strom:"), each with its type,
//! default, validator and the doc DescribeConfigs and the README show.
//! [`crate::broker`] reads them into a `BrokerConfig`.

use crate::definition::{ConfigDef, ConfigType, Validator, NO_MAX};
use crate::topic::{CLEANUP_POLICIES, COMPRESSION_TYPES, LONG_MAX_TEXT, TIMESTAMP_TYPES};

macro_rules! key {
    ($name:literal, $kind:ident, $default:expr, $validator:expr, $doc:literal) => {
        ConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            default: $default,
            validator: $validator,
            doc: $doc,
        }
    };
}

const AT_LEAST_0: Validator = Validator::Range {
    min: 0,
    max: NO_MAX,
};
const AT_LEAST_1: Validator = Validator::Range {
    min: 1,
    max: NO_MAX,
};
const ANY: Validator = Validator::Any;

/// Every broker key Strom knows. Keys marked "accepted" in their doc are
/// read and validated for compatibility with existing files but do not change
/// Strom's behaviour.
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    key!("node.id", Int, Some("1"), Validator::Range { min: 0, max: NO_MAX }, "This node's id in the cluster."),
    key!("cluster.id", String, None, ANY, "Strom: the cluster id unformatted log directories get (22 characters of URL-safe base64, as `strom random-uuid` prints); every node of a cluster needs the same. Required with more than one voter unless the directories were formatted with `strom format`."),
    key!("broker.id", Int, None, Validator::Range { min: 0, max: NO_MAX }, "Older name of node.id."),
    key!("process.roles", List, Some("broker,controller"), Validator::ListOf(&["broker", "controller"]), "Roles of this process: broker, controller, or both."),
    key!("listeners", List, Some("PLAINTEXT://127.0.0.1:9092"), ANY, "Addresses to listen on, NAME://host:port."),
    key!("advertised.listeners", List, None, ANY, "Addresses clients are told to use; defaults to listeners."),
    key!("config.providers", List, Some(""), ANY, "Names of config providers whose variables values may use; the environment provider (`org.apache.kafka.common.config.provider.EnvVarConfigProvider`, set as config.providers.NAME.class) resolves ${NAME:VARIABLE}."),
    key!("listener.security.protocol.map", List, Some("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), ANY, "Security protocol of each listener name."),
    key!("controller.listener.names", List, Some("CONTROLLER"), ANY, "Listener names used by the controller quorum."),
    key!("controller.quorum.voters", List, Some(""), ANY, "Quorum voters as id@host:port; empty makes this node a one-voter quorum."),
    key!("controller.quorum.bootstrap.servers", List, Some(""), ANY, "Accepted; Strom uses controller.quorum.voters."),
    key!("controller.quorum.election.timeout.ms", Int, Some("1000"), AT_LEAST_1, "How long a voter waits without hearing from a leader before it calls an election (randomized up to twice this)."),
    key!("broker.session.timeout.ms", Int, Some("9000"), AT_LEAST_1, "How long a broker may go without a heartbeat before the controller fences it."),
    key!("broker.heartbeat.interval.ms", Int, Some("2000"), AT_LEAST_1, "How often a broker heartbeats to the controller."),
    key!("inter.broker.listener.name", String, None, ANY, "Listener brokers use among themselves; defaults to the first listener."),
    key!("log.dirs", List, None, ANY, "Directories holding partition logs; defaults to log.dir."),
    key!("log.dir", String, Some("./data"), ANY, "Log directory used when log.dirs is unset."),
    key!("num.partitions", Int, Some("1"), AT_LEAST_1, "Partitions of auto-created topics and of CreateTopics without a count."),
    key!("default.replication.factor", Short, Some("1"), AT_LEAST_1, "Replication factor of auto-created topics and of CreateTopics without one."),
    key!("min.insync.replicas", Int, Some("1"), AT_LEAST_1, "In-sync replicas an acks=all write needs."),
    key!("auto.create.topics.enable", Boolean, Some("true"), ANY, "Create unknown topics asked for by Metadata."),
    key!("delete.topic.enable", Boolean, Some("true"), ANY, "Allow DeleteTopics."),
    key!("unclean.leader.election.enable", Boolean, Some("false"), ANY, "Allow a replica outside the ISR to become leader."),
    key!("replica.lag.time.max.ms", Long, Some("30000"), AT_LEAST_1, "A follower not caught up with its leader for this long leaves the ISR."),
    key!("replica.fetch.max.bytes", Int, Some("1048576"), AT_LEAST_1, "Bytes a follower asks for per partition in one fetch."),
    key!("replica.fetch.response.max.bytes", Int, Some("10485760"), AT_LEAST_1, "Bytes a follower asks for in one fetch response."),
    key!("replica.fetch.wait.max.ms", Int, Some("500"), AT_LEAST_1, "How long a follower's fetch may wait at the leader for new data."),
    key!("replica.fetch.backoff.ms", Int, Some("1000"), AT_LEAST_1, "How long a follower waits after a failed fetch."),
    key!("replica.socket.timeout.ms", Int, Some("30000"), AT_LEAST_1, "How long a follower waits for a fetch response."),
    key!("max.request.partition.size.limit", Int, Some("2000"), AT_LEAST_1, "The most partitions one DescribeTopicPartitions response describes."),
    key!("auto.leader.rebalance.enable", Boolean, Some("true"), ANY, "The controller moves leadership back to preferred replicas periodically."),
    key!("leader.imbalance.check.interval.seconds", Long, Some("300"), AT_LEAST_1, "How often the controller looks for partitions not led by their preferred replica."),
    key!("log.retention.hours", Int, Some("168"), ANY, "Hours to keep a segment (lowest priority of the three)."),
    key!("log.retention.minutes", Int, None, ANY, "Minutes to keep a segment."),
    key!("log.retention.ms", Long, None, Validator::Range { min: -1, max: NO_MAX }, "Milliseconds to keep a segment; -1 is forever."),
    key!("log.retention.bytes", Long, Some("-1"), ANY, "Largest partition log size before deletion; -1 is unlimited."),
    key!("log.retention.check.interval.ms", Long, Some("300000"), AT_LEAST_1, "How often retention is enforced."),
    key!("log.segment.bytes", Int, Some("1073741824"), Validator::Range { min: 14, max: NO_MAX }, "Segment size at which a new segment is rolled."),
    key!("log.roll.hours", Int, Some("168"), AT_LEAST_1, "Hours after which a segment is rolled."),
    key!("log.roll.ms", Long, None, AT_LEAST_1, "Milliseconds after which a segment is rolled."),
    key!("log.roll.jitter.hours", Int, Some("0"), AT_LEAST_0, "Jitter subtracted from the roll time, hours."),
    key!("log.roll.jitter.ms", Long, None, AT_LEAST_0, "Jitter subtracted from the roll time, ms."),
    key!("log.index.size.max.bytes", Int, Some("10485760"), Validator::Range { min: 8, max: NO_MAX }, "Preallocated size of each index file."),
    key!("log.index.interval.bytes", Int, Some("4096"), AT_LEAST_0, "Bytes between two offset index entries."),
    key!("log.flush.interval.messages", Long, Some(LONG_MAX_TEXT), AT_LEAST_1, "Messages after which a log is fsynced."),
    key!("log.flush.interval.ms", Long, None, AT_LEAST_0, "Age after which unflushed data is fsynced."),
    key!("log.flush.scheduler.interval.ms", Long, Some(LONG_MAX_TEXT), AT_LEAST_0, "How often logs are checked for flush.ms."),
    key!("log.flush.offset.checkpoint.interval.ms", Int, Some("60000"), AT_LEAST_0, "How often the recovery point is checkpointed."),
    key!("log.flush.start.offset.checkpoint.interval.ms", Int, Some("60000"), AT_LEAST_0, "How often log start offsets are checkpointed."),
    key!("log.cleanup.policy", List, Some("delete"), Validator::ListOf(CLEANUP_POLICIES), "Default cleanup.policy."),
    key!("log.cleaner.delete.retention.ms", Long, Some("86400000"), AT_LEAST_0, "Default delete.retention.ms."),
    key!("log.cleaner.min.compaction.lag.ms", Long, Some("0"), AT_LEAST_0, "Default min.compaction.lag.ms."),
    key!("log.cleaner.max.compaction.lag.ms", Long, Some(LONG_MAX_TEXT), AT_LEAST_1, "Default max.compaction.lag.ms."),
    key!("log.cleaner.min.cleanable.ratio", Double, Some("0.5"), Validator::DoubleRange { min: 0.0, max: 1.0 }, "Default min.cleanable.dirty.ratio."),
    key!("log.message.timestamp.type", String, Some("CreateTime"), Validator::OneOf(TIMESTAMP_TYPES), "Default message.timestamp.type."),
    key!("log.message.timestamp.before.max.ms", Long, Some(LONG_MAX_TEXT), AT_LEAST_0, "Default message.timestamp.before.max.ms."),
    key!("log.message.timestamp.after.max.ms", Long, Some("3600000"), AT_LEAST_0, "Default message.timestamp.after.max.ms."),
    key!("log.preallocate", Boolean, Some("false"), ANY, "Default preallocate."),
    key!("log.segment.delete.delay.ms", Long, Some("60000"), AT_LEAST_0, "Default file.delete.delay.ms."),
    key!("compression.type", String, Some("producer"), Validator::OneOfIgnoreCase(COMPRESSION_TYPES), "Default compression.type."),
    key!("message.max.bytes", Int, Some("1048588"), AT_LEAST_0, "Largest record batch a topic accepts by default."),
    key!("fetch.max.bytes", Int, Some("57671680"), Validator::Range { min: 1024, max: NO_MAX }, "Most bytes returned by one Fetch."),
    key!("socket.request.max.bytes", Int, Some("104857600"), AT_LEAST_1, "Largest request frame accepted."),
    key!("socket.send.buffer.bytes", Int, Some("102400"), ANY, "SO_SNDBUF of client connections; -1 keeps the OS default."),
    key!("socket.receive.buffer.bytes", Int, Some("102400"), ANY, "SO_RCVBUF of client connections; -1 keeps the OS default."),
    key!("queued.max.requests", Int, Some("500"), AT_LEAST_1, "Most requests the broker holds at once, counted over all client connections: a request counts from the moment its body is read until its handling ends or it waits in a purgatory (acks=all, a fetch's long poll, a group's rebalance). Kafka bounds its network-to-I/O-thread queue with this key; Strom handles requests on the connection that read them, so this is the same bound on requests read but not yet handled. At the limit, connections stop reading until a request finishes."),
    key!("queued.max.request.bytes", Long, Some("-1"), ANY, "Most request bytes the broker holds at once, counted over all client connections: a frame's whole declared size is taken when its size prefix arrives, before its body is read, and given back when its handling ends or it waits in a purgatory. At the limit, connections stop reading until bytes are given back. -1 (or any value ≤ 0) is unlimited; otherwise it must be at least socket.request.max.bytes, as Kafka requires."),
    key!("queued.max.fetch.response.bytes", Long, Some("268435456"), ANY, "Strom's own key (Kafka has none: it sends fetched records from the page cache): most fetched record bytes the broker holds in memory at once for consumers, counted over all client connections from the moment a partition's read is copied from the log until the response carrying it has been written to the client's socket. A consumer that does not read its socket keeps its share until it reads or connections.max.idle.ms closes it. At the limit, reads return fewer batches, and a fetch that gets none waits (within its max.wait.ms) for bytes to be given back. One response larger than the whole budget still passes when nothing else is held. Follower fetches from other brokers do not count. -1 (or any value ≤ 0) is unlimited."),
    key!("connections.max.idle.ms", Long, Some("600000"), AT_LEAST_0, "A client connection is closed when no complete request has arrived and no response has been written for this long, whatever trickle of bytes arrives; time spent handling a request (a long-poll fetch, an acks=all produce) or waiting for the request budget (queued.max.requests) does not count. A response the client does not read for this long also closes it."),
    key!("max.connections", Int, Some("2147483647"), AT_LEAST_0, "Most client connections open at once, over every client listener; one more is closed as it is accepted (Kafka makes it wait in the backlog instead), counted in strom_connections_refused_total{limit=\"max.connections\"}."),
    key!("max.connections.per.ip", Int, Some("2147483647"), AT_LEAST_0, "Most client connections open at once from one IP address (unless max.connections.per.ip.overrides names it); one more is closed as it is accepted, with a log line and strom_connections_refused_total{limit=\"max.connections.per.ip\"}. 0 is allowed only with overrides (only the listed hosts may connect), as Kafka requires."),
    key!("max.connections.per.ip.overrides", String, Some(""), ANY, "Per-IP exceptions to max.connections.per.ip, as host:count,host:count; a host is an IP address or a hostname resolved once at start-up."),
    key!("max.connection.creation.rate", Int, Some("2147483647"), AT_LEAST_1, "Most new client connections accepted per second, broker-wide (the inter-broker listener is exempt, as in Kafka). Past it, accepting is delayed, not refused: new connections wait in the listen backlog until the rate allows them; strom_connections_throttled_total and strom_connection_accept_throttle_seconds_total count the delays."),
    key!("num.network.threads", Int, Some("3"), AT_LEAST_1, "Accepted; Strom serves connections on one async runtime."),
    key!("num.io.threads", Int, Some("8"), AT_LEAST_1, "Accepted; Strom serves requests on one async runtime."),
    key!("num.recovery.threads.per.data.dir", Int, Some("2"), AT_LEAST_1, "Accepted; logs are recovered one directory at a time."),
    key!("broker.rack", String, None, ANY, "Rack of this broker, for rack-aware placement."),
    key!("offsets.topic.num.partitions", Int, Some("50"), AT_LEAST_1, "Partitions of __consumer_offsets."),
    key!("offsets.topic.replication.factor", Short, Some("3"), AT_LEAST_1, "Replication factor of __consumer_offsets."),
    key!("transaction.state.log.num.partitions", Int, Some("50"), AT_LEAST_1, "Partitions of __transaction_state."),
    key!("transaction.state.log.replication.factor", Short, Some("3"), AT_LEAST_1, "Replication factor of __transaction_state."),
        key!("group.initial.rebalance.delay.ms", Int, Some("3000"), AT_LEAST_0, "Delay of a new group's first rebalance."),
    key!("group.min.session.timeout.ms", Int, Some("6000"), AT_LEAST_0, "Shortest session timeout a group member may ask for."),
    key!("group.max.session.timeout.ms", Int, Some("1800000"), AT_LEAST_0, "Longest session timeout a group member may ask for."),
    key!("group.max.size", Int, Some("2147483647"), AT_LEAST_1, "Most members of one group."),
    key!("offsets.retention.minutes", Int, Some("10080"), AT_LEAST_1, "How long the committed offsets of an empty group are kept."),
    key!("offsets.retention.check.interval.ms", Long, Some("600000"), AT_LEAST_1, "How often expired committed offsets are removed."),
    key!("offset.metadata.max.bytes", Int, Some("4096"), AT_LEAST_0, "Largest metadata string of a committed offset."),
    key!("offsets.topic.segment.bytes", Int, Some("104857600"), AT_LEAST_1, "segment.bytes of __consumer_offsets."),
    key!("offsets.commit.timeout.ms", Int, Some("5000"), AT_LEAST_1, "How long an offset commit waits for the in-sync replicas."),
    key!("producer.id.expiration.ms", Int, Some("86400000"), AT_LEAST_1, "Idle time after which a partition forgets an idempotent producer."),
    key!("producer.id.expiration.check.interval.ms", Int, Some("600000"), AT_LEAST_1, "How often idle producers are forgotten."),
    key!("transactional.id.expiration.ms", Int, Some("604800000"), AT_LEAST_1, "Accepted (transactions are not supported yet)."),
    key!("http.listener", String, Some("127.0.0.1:9644"), ANY, "Strom: host:port of the HTTP endpoint (metrics, health); empty disables it."),
];
