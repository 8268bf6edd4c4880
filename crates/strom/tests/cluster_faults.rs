//! The metadata quorum under network partitions and pauses, with real
//! processes: each node on its own loopback address (127.0.0.x, a
//! different three for each test, since cuts match addresses) and links
//! cut with iptables rules (needs root and iptables, which tests/run
//! installs), or the active controller stopped with SIGSTOP. Also: a
//! client posing as the followers of a partition whose followers are
//! SIGSTOPped moves neither its high watermark nor its ISR.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use strom_test_utils::{pause_process, wait_until, BrokerProcess, Cluster, Netfilter};

const DEADLINE: Duration = Duration::from_secs(30);
/// Starts three nodes on `127.0.0.{first}`, `{first + 1}` and `{first + 2}`;
/// returns them with their hosts, node i + 1 on `hosts[i]`.
fn start(first: u8) -> (Cluster, [String; 3]) {
    let hosts = [0, 1, 2].map(|i| format!("127.0.0.{}", first + i));
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cluster = Cluster::start_on(BIN, &refs, &[]).expect("start a 3-node cluster");
    (cluster, hosts)
}

fn controller_id(node: &BrokerProcess) -> Option<i32> {
    let mut c = strom_test_utils::KafkaConnection::connect(&node.bootstrap()).ok()?;
    c.set_read_timeout(Duration::from_secs(5));
    let r: DescribeClusterResponse = c
        .send(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .ok()?;
    // −1: an election is under way.
    Some(r.controller_id.0).filter(|id| *id >= 0)
}

/// The cluster's metadata as `node` sees it: brokers offered to clients and
/// every topic's partition leaders.
fn view(node: &BrokerProcess) -> (Vec<i32>, BTreeMap<String, BTreeMap<i32, i32>>) {
    let mut c = match strom_test_utils::KafkaConnection::connect(&node.bootstrap()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect to {}: {e}", node.bootstrap());
            return (Vec::new(), BTreeMap::new());
        }
    };
    c.set_read_timeout(Duration::from_secs(5));
    let all_topics = MetadataRequest::default().with_topics(None);
    let r = match c.send::<MetadataRequest>(ApiKey::Metadata, 12, &all_topics) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("metadata from {}: {e}", node.bootstrap());
            return (Vec::new(), BTreeMap::new());
        }
    };
    let mut brokers: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort();
    let topics = r
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect(),
            )
        })
        .collect();
    (brokers, topics)
}

fn create(node: &BrokerProcess, topic: &str, partitions: i32) -> i16 {
    let Ok(mut c) = strom_test_utils::KafkaConnection::connect(&node.bootstrap()) else {
        return -1;
    };
    c.set_read_timeout(Duration::from_secs(40));
    create_topic(&mut c, topic, partitions, &[]).topics[0].error_code
}

fn produce_error(node: &BrokerProcess, topic: &str, partition: i32) -> i16 {
    let mut c = strom_test_utils::KafkaConnection::connect(&node.bootstrap()).unwrap();
    produce(&mut c, topic, partition, &[b"v"]).0
}

/// The last lines each node logged, for failure messages.
fn log_tails(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            format!("--- node {} ---\n{tail}", i + 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// After healing, every node converges on one history: the same brokers
/// and the same topics with the same leaders.
fn assert_one_history(cluster: &Cluster, must_have: &[&str]) {
    let agreed = wait_until(Duration::from_secs(60), || {
        // Each look opens three connections: look a few times a second.
        std::thread::sleep(Duration::from_millis(100));
        let views: Vec<_> = cluster.nodes.iter().map(view).collect();
        views.iter().all(|v| *v == views[0])
            && views[0].0 == vec![1, 2, 3]
            && must_have.iter().all(|t| views[0].1.contains_key(*t))
    });
    assert!(
        agreed,
        "nodes disagree: {:?}",
        cluster.nodes.iter().map(view).collect::<Vec<_>>()
    );
}

#[test]
fn an_isolated_controller_gives_way_and_its_broker_fences_itself() {
    let (mut cluster, hosts) = start(2);
    let old = controller_id(&cluster.nodes[0]).unwrap();
    assert_eq!(create(&cluster.nodes[0], "spread", 3), 0);
    let (_, topics) = view(&cluster.nodes[0]);
    let owned: Vec<i32> = topics["spread"]
        .iter()
        .filter(|(_, l)| **l == old)
        .map(|(p, _)| *p)
        .collect();
    assert!(!owned.is_empty(), "node {old} leads none of {topics:?}");
    let others: Vec<i32> = (1..=3).filter(|n| *n != old).collect();

    let net = Netfilter::new().unwrap();
    for o in &others {
        net.cut(&hosts[(old - 1) as usize], &hosts[(*o - 1) as usize])
            .unwrap();
    }
    // The majority elects a new controller and keeps changing metadata.
    let majority = others[0];
    let mut new = None;
    assert!(
        wait_until(DEADLINE, || {
            new = controller_id(cluster.node(majority)).filter(|c| *c != old);
            new.is_some()
        }),
        "the majority elected no new controller"
    );
    assert_eq!(create(cluster.node(majority), "during", 1), 0);
    // It fences the isolated broker and its partitions lose their leader.
    assert!(
        wait_until(DEADLINE, || !view(cluster.node(majority)).0.contains(&old)),
        "node {old} was not fenced"
    );
    // The isolated broker stops acting as their leader on its own.
    assert!(
        wait_until(DEADLINE, || owned.iter().all(|p| produce_error(
            cluster.node(old),
            "spread",
            *p
        )
            == ErrorCode::NotLeaderOrFollower.code())),
        "isolated node {old} still accepts produce"
    );

    net.heal().unwrap();
    assert_one_history(&cluster, &["spread", "during"]);
    // The old controller follows whoever leads now (the new one, unless
    // leadership moved again), like every other node.
    assert!(
        wait_until(DEADLINE, || {
            let seen: BTreeSet<Option<i32>> = cluster.nodes.iter().map(controller_id).collect();
            seen.len() == 1 && !seen.contains(&None)
        }),
        "nodes disagree on the controller (new was {new:?})"
    );
    // It leads its partitions again once it hears it is unfenced.
    assert!(
        wait_until(DEADLINE, || owned.iter().all(|p| produce_error(
            cluster.node(old),
            "spread",
            *p
        ) == 0)),
        "node {old} did not lead {owned:?} again"
    );
}

#[test]
fn a_paused_controller_is_replaced_and_rejoins_as_a_follower() {
    let (mut cluster, _) = start(5);
    let old = controller_id(&cluster.nodes[0]).unwrap();
    let majority = (old % 3) + 1;
    let pid = cluster.node(old).pid().unwrap();
    pause_process(pid, true);
    let mut new = None;
    let elected = wait_until(DEADLINE, || {
        new = controller_id(cluster.node(majority)).filter(|c| *c != old);
        new.is_some()
    });
    if !elected {
        pause_process(pid, false);
        panic!("no new controller while {old} was paused");
    }
    let created = create(cluster.node(majority), "while-paused", 2);
    pause_process(pid, false);
    assert_eq!(created, 0, "{}", log_tails(&cluster));
    assert_one_history(&cluster, &["while-paused"]);
    // The resumed node learns the new leader from its first heartbeat.
    let mut leaders = BTreeSet::new();
    assert!(
        wait_until(DEADLINE, || {
            leaders = cluster.nodes.iter().map(controller_id).collect();
            leaders.len() == 1 && !leaders.contains(&None)
        }),
        "one controller: {leaders:?}"
    );
}

#[test]
fn a_minority_cannot_change_metadata_and_loses_nothing_it_was_not_promised() {
    let (mut cluster, hosts) = start(8);
    let leader = controller_id(&cluster.nodes[0]).unwrap();
    let follower = (leader % 3) + 1;
    let other = (follower % 3) + 1;
    // Cut one follower off: the other two still make a majority.
    let net = Netfilter::new().unwrap();
    net.cut(
        &hosts[(follower - 1) as usize],
        &hosts[(leader - 1) as usize],
    )
    .unwrap();
    net.cut(
        &hosts[(follower - 1) as usize],
        &hosts[(other - 1) as usize],
    )
    .unwrap();
    assert_eq!(create(cluster.node(leader), "majority", 1), 0);
    // A request through the cut-off node cannot be committed.
    let refused = create(cluster.node(follower), "minority", 1);
    assert_ne!(refused, 0, "a node without a majority must not commit");
    net.heal().unwrap();
    assert_one_history(&cluster, &["majority"]);
    assert!(!view(cluster.node(leader)).1.contains_key("minority"));
}

/// (leader, sorted ISR) of partition 0 of `topic` as `node` sees it.
fn leader_and_isr(node: &BrokerProcess, topic: &str) -> (i32, Vec<i32>) {
    let Ok(mut c) = strom_test_utils::KafkaConnection::connect(&node.bootstrap()) else {
        return (-1, Vec::new());
    };
    let r = topic_metadata(&mut c, topic);
    let p = &r.topics[0].partitions[0];
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    (p.leader_id.0, isr)
}

/// SIGCONTs the processes it holds when dropped, also when a test fails.
struct Resume(Vec<u32>);

impl Drop for Resume {
    fn drop(&mut self) {
        for pid in &self.0 {
            pause_process(*pid, false);
        }
    }
}

/// Sets the flag when dropped, so a helper thread stops also when a test
/// fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Where a fetch posing as follower `replica` reads: far beyond the log end.
const FORGED_FETCH_OFFSET: i64 = 1_000_000;

/// Fetches posing as `replica`: v11 with the replica id in the header,
/// and v15 with a made-up broker epoch in ReplicaState (KIP-903).
fn forged_replica_fetches(
    topic: &str,
    topic_id: uuid::Uuid,
    replica: i32,
) -> [(i16, FetchRequest); 2] {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
    let partition = || {
        vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(FORGED_FETCH_OFFSET)
            .with_partition_max_bytes(1 << 20)]
    };
    let base = || {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
    };
    let v11 = base()
        .with_replica_id(BrokerId(replica))
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(partition())]);
    let v15 = base()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(replica))
                .with_replica_epoch(987_654_321),
        )
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(partition())]);
    [(11, v11), (15, v15)]
}

/// Issue 14, item 1: only brokers act as replicas. With both followers of
/// an RF=3, `min.insync.replicas=2` partition paused, a client sending
/// Fetch as those followers (v11 with their replica ids, v15 with a
/// made-up broker epoch) at offsets beyond the log end must not get an
/// acks=all write acknowledged, nor keep the paused followers in the ISR.
/// (The session timeout is long, so fencing cannot be what shrinks it.)
#[test]
fn fetches_posing_as_paused_followers_acknowledge_nothing_and_the_isr_shrinks() {
    const LAG_MS: u64 = 1_500;
    let mut cluster = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &[
            "replica.lag.time.max.ms=1500",
            "broker.session.timeout.ms=60000",
        ],
    )
    .expect("start the cluster");
    let topic = "posing";
    {
        let mut c =
            strom_test_utils::KafkaConnection::connect(&cluster.node(2).bootstrap()).unwrap();
        let t = create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(kafka_protocol::protocol::StrBytes::from_static_str(
                    "min.insync.replicas",
                ))
                .with_value(Some(
                    kafka_protocol::protocol::StrBytes::from_static_str("2"),
                ))]);
        let r: CreateTopicsResponse = c
            .send(
                ApiKey::CreateTopics,
                7,
                &CreateTopicsRequest::default()
                    .with_timeout_ms(10_000)
                    .with_topics(vec![t]),
            )
            .unwrap();
        assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    }
    let mut leader = -1;
    assert!(
        wait_until(DEADLINE, || {
            let (l, isr) = leader_and_isr(cluster.node(2), topic);
            leader = l;
            l > 0 && isr == vec![2, 3, 4]
        }),
        "the partition never had a full ISR"
    );
    let followers: Vec<i32> = [2, 3, 4].into_iter().filter(|b| *b != leader).collect();
    let mut lc =
        strom_test_utils::KafkaConnection::connect(&cluster.node(leader).bootstrap()).unwrap();
    // The real followers replicate (their own fetches count).
    assert_eq!(produce(&mut lc, topic, 0, &[b"before"]), (0, 0));
    let topic_id = topic_metadata(&mut lc, topic).topics[0].topic_id;

    let pids: Vec<u32> = followers
        .iter()
        .map(|f| cluster.node(*f).pid().unwrap())
        .collect();
    for pid in &pids {
        pause_process(*pid, true);
    }
    let resume = Resume(pids);
    let paused_at = Instant::now();

    // A client fetches as both followers, over and over.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(Arc::clone(&stop));
    let answers: Arc<Mutex<Vec<(i16, i32, i16)>>> = Arc::default();
    let forger = {
        let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
        let address = cluster.node(leader).bootstrap();
        let followers = followers.clone();
        std::thread::spawn(move || {
            let mut c = strom_test_utils::KafkaConnection::connect(&address).unwrap();
            c.set_read_timeout(Duration::from_secs(10));
            while !stop.load(Ordering::SeqCst) {
                for f in &followers {
                    for (version, request) in forged_replica_fetches(topic, topic_id, *f) {
                        let r: FetchResponse = c.send(ApiKey::Fetch, version, &request).unwrap();
                        let code = r
                            .responses
                            .first()
                            .and_then(|t| t.partitions.first())
                            .map_or(r.error_code, |p| p.error_code);
                        answers.lock().unwrap().push((version, *f, code));
                    }
                }
                // Pacing, not synchronisation: leave the shared CPUs to
                // the brokers.
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    assert!(
        wait_until(DEADLINE, || answers.lock().unwrap().len() >= 4),
        "the forged fetches got no answers"
    );

    // An acks=all write while only the leader has it: never acknowledged.
    let batch = values_batch(&[b"only-on-the-leader"]);
    let produced: ProduceResponse = lc
        .send(
            ApiKey::Produce,
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch)),
                    ])]),
        )
        .unwrap();
    let code = produced.responses[0].partition_responses[0].error_code;
    assert!(
        [
            ErrorCode::RequestTimedOut.code(),
            ErrorCode::NotEnoughReplicas.code(),
            ErrorCode::NotEnoughReplicasAfterAppend.code(),
        ]
        .contains(&code),
        "an acks=all write held by the leader alone got error code {code}"
    );

    // The paused followers leave the ISR once they lag, as if nobody
    // fetched in their name.
    let shrink_by = Duration::from_millis(LAG_MS) + Duration::from_secs(6);
    let shrunk = wait_until(shrink_by.saturating_sub(paused_at.elapsed()), || {
        leader_and_isr(cluster.node(leader), topic).1 == vec![leader]
    });
    assert!(
        shrunk,
        "ISR {:?} {} ms after the followers paused",
        leader_and_isr(cluster.node(leader), topic).1,
        paused_at.elapsed().as_millis()
    );
    drop(stop_guard);
    forger.join().unwrap();
    // Every forged fetch was refused as not coming from that broker.
    let answers = answers.lock().unwrap().clone();
    let seen: BTreeSet<(i16, i32, i16)> = answers.iter().copied().collect();
    let expected: BTreeSet<(i16, i32, i16)> = followers
        .iter()
        .flat_map(|f| [11, 15].map(|v| (v, *f, ErrorCode::StaleBrokerEpoch.code())))
        .collect();
    assert_eq!(
        seen,
        expected,
        "(version, posing as, error code) of {} forged fetches",
        answers.len()
    );

    // The real followers come back, rejoin, and acks=all works again.
    drop(resume);
    assert!(
        wait_until(DEADLINE, || leader_and_isr(cluster.node(leader), topic).1
            == vec![2, 3, 4]),
        "the followers did not rejoin: {:?}",
        leader_and_isr(cluster.node(leader), topic)
    );
    assert_eq!(produce(&mut lc, topic, 0, &[b"after"]).0, 0);
}
