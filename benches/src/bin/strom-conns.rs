//! `strom-conns`: the broker's memory under many client connections that
//! go quiet.
//!
//! Starts a broker, reads its RSS, opens `--connections` connections that
//! each send one ApiVersions request and read its answer (a client that
//! connected and then went quiet), holds them all open, and prints the
//! broker's RSS and peak RSS from /proc with the cost per connection; then
//! closes them and prints the RSS again.
//!
//! With `--unread-fetch-mb N`, the broker first gets a log of N MB (one
//! partition, 1 MB batches), and each connection instead sends one Fetch
//! asking 55 MB (Kafka's default `fetch.max.bytes`) from a different
//! offset and never reads its socket, the broker's budgets at their
//! defaults (or as `--broker-config` sets them); the figures add what the
//! fetch response budget held and how many connections it closed.
//!
//! ```sh
//! cargo build --release -p strom -p strom-bench
//! target/release/strom-conns --strom target/release/strom --connections 10000
//! target/release/strom-conns --strom target/release/strom --connections 1000 --unread-fetch-mb 256
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_protocol::batch_builder::BatchBuilder;
use strom_test_utils::{metric_value, proc_status_kib, BrokerProcess, KafkaConnection};

#[derive(Debug, Parser)]
#[command(
    name = "strom-conns",
    about = "Broker memory under many idle connections"
)]
struct Args {
    /// The broker binary.
    #[arg(long, default_value = "target/release/strom")]
    strom: PathBuf,
    /// Idle connections to hold open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Instead of going quiet after ApiVersions, each connection leaves a
    /// 55 MB fetch of a log of this many MB unread.
    #[arg(long)]
    unread_fetch_mb: Option<usize>,
    /// Broker config overrides (key=value), repeatable.
    #[arg(long = "broker-config")]
    broker_config: Vec<String>,
}

/// What each unread fetch asks for: Kafka's default `fetch.max.bytes`.
const FETCH_ASK_BYTES: i32 = 55 * 1024 * 1024;
const BATCH_VALUE_BYTES: usize = 1_000_000;
const TOPIC: &str = "unread";

/// Creates `unread` (one partition) and writes `mb` batches of 1 MB.
fn write_log(address: &str, mb: usize) -> Result<()> {
    let mut c = KafkaConnection::connect(address)?;
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let created = c.send(
        ApiKey::CreateTopics,
        5,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(30_000),
    )?;
    let code = created.topics.first().map_or(-1, |t| t.error_code);
    if code != 0 {
        bail!("CreateTopics answered error {code}");
    }
    let value: Vec<u8> = (0..BATCH_VALUE_BYTES).map(|i| (i % 251) as u8).collect();
    for _ in 0..mb {
        let batch = BatchBuilder::of_values(0, &[&value]).build();
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(bytes::Bytes::from(batch)))])]);
        let r = c.send(ApiKey::Produce, 9, &request)?;
        let code = r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map_or(-1, |p| p.error_code);
        if code != 0 {
            bail!("Produce answered error {code}");
        }
    }
    Ok(())
}

/// A Fetch frame asking 55 MB of `unread` from `offset`.
fn fetch_frame(offset: i64) -> Result<Vec<u8>> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_ASK_BYTES)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(FETCH_ASK_BYTES)])]);
    frame(ApiKey::Fetch, 12, &request)
}

/// Connects and sends `frame`, never reading.
fn connect_unread(address: &str, frame: &[u8]) -> Result<TcpStream> {
    let mut s = TcpStream::connect(address)?;
    s.write_all(frame)?;
    Ok(s)
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let field = |name: &str| {
        proc_status_kib(pid, name).with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS")?, field("VmHWM")?))
}

/// Raises this process's open-file limit to its hard limit.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// A request frame: size, header (client id `strom-conns`), body.
fn frame(api: ApiKey, version: i16, request: &impl Encodable) -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("strom-conns")));
    let mut body = bytes::BytesMut::new();
    header.encode(&mut body, api.request_header_version(version))?;
    request.encode(&mut body, version)?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn api_versions_frame() -> Result<Vec<u8>> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-conns"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    frame(ApiKey::ApiVersions, 3, &request)
}

/// A counter or gauge of the broker's metrics (0 when absent).
fn metric(broker: &BrokerProcess, series: &str) -> f64 {
    broker
        .http_get("/metrics")
        .ok()
        .and_then(|(_, text)| metric_value(&text, series))
        .unwrap_or(0.0)
}

fn connect_quiet(address: &str, frame: &[u8]) -> Result<TcpStream> {
    let mut s = TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(frame)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let mut answer = vec![0u8; usize::try_from(i32::from_be_bytes(size)).unwrap_or(0)];
    s.read_exact(&mut answer)?;
    Ok(s)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let files = raise_open_file_limit();
    if (files as usize) < args.connections + 100 {
        bail!(
            "this process may open {files} files, too few for {} connections",
            args.connections
        );
    }
    let overrides: Vec<&str> = args.broker_config.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start_with_log(&args.strom, &overrides, "warn")?;
    let pid = broker.pid().context("the broker is not running")?;
    if let Some(mb) = args.unread_fetch_mb {
        write_log(&broker.bootstrap(), mb)?;
    }
    // Let start-up settle before the baseline.
    std::thread::sleep(Duration::from_secs(1));
    let (idle_kib, _) = rss_kib(pid)?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let connection = match args.unread_fetch_mb {
            Some(mb) => connect_unread(&broker.bootstrap(), &fetch_frame((i % mb.max(1)) as i64)?),
            None => connect_quiet(&broker.bootstrap(), &api_versions_frame()?),
        };
        held.push(connection.with_context(|| format!("connection {i}"))?);
    }
    let opened = started.elapsed();
    let what = match args.unread_fetch_mb {
        Some(mb) => format!("connections each leaving a 55 MB fetch of a {mb} MB log unread"),
        None => "idle connections".to_string(),
    };
    // Unread fetches: let every one be read, refused room or evicted.
    std::thread::sleep(Duration::from_secs(if args.unread_fetch_mb.is_some() {
        10
    } else {
        1
    }));
    let (rss, peak) = rss_kib(pid)?;
    println!(
        "{} {what} opened in {:.1} s: broker RSS {:.1} MiB (before: {:.1} MiB), peak {:.1} MiB, {:.1} KiB per connection",
        args.connections,
        opened.as_secs_f64(),
        rss as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
        peak as f64 / 1024.0,
        (rss.saturating_sub(idle_kib)) as f64 / args.connections.max(1) as f64
    );
    if args.unread_fetch_mb.is_some() {
        println!(
            "fetch response budget: {:.1} MiB held, {} reads found no room, {} connections closed for holding room unread",
            metric(&broker, "strom_fetch_response_queue_bytes") / 1048576.0,
            metric(&broker, "strom_fetch_response_queue_shortfalls_total"),
            metric(&broker, "strom_fetch_response_evictions_total"),
        );
    }
    drop(held);
    std::thread::sleep(Duration::from_secs(2));
    let (after, _) = rss_kib(pid)?;
    println!(
        "after closing them: broker RSS {:.1} MiB",
        after as f64 / 1024.0
    );
    Ok(())
}
