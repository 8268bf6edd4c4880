//! `strom-conns`: the broker's memory under many idle client connections.
//!
//! Starts a broker, reads its RSS, opens `--connections` connections that
//! each send one ApiVersions request and read its answer (a client that
//! connected and then went quiet), holds them all open, and prints the
//! broker's RSS and peak RSS from /proc with the cost per connection; then
//! closes them and prints the RSS again.
//!
//! ```sh
//! cargo build --release -p strom -p strom-bench
//! target/release/strom-conns --strom target/release/strom --connections 10000
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_test_utils::{proc_status_kib, BrokerProcess};

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

fn api_versions_frame() -> Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("strom-conns")));
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-conns"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let mut body = bytes::BytesMut::new();
    header.encode(&mut body, ApiKey::ApiVersions.request_header_version(3))?;
    request.encode(&mut body, 3)?;
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Ok(frame)
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
    let broker = BrokerProcess::start_with_log(&args.strom, &[], "warn")?;
    let pid = broker.pid().context("the broker is not running")?;
    // Let start-up settle before the baseline.
    std::thread::sleep(Duration::from_secs(1));
    let (idle_kib, _) = rss_kib(pid)?;
    let frame = api_versions_frame()?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        held.push(
            connect_quiet(&broker.bootstrap(), &frame)
                .with_context(|| format!("connection {i}"))?,
        );
    }
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let (rss, peak) = rss_kib(pid)?;
    println!(
        "{} idle connections opened in {:.1} s: broker RSS {:.1} MiB (before: {:.1} MiB), peak {:.1} MiB, {:.1} KiB per connection",
        args.connections,
        opened.as_secs_f64(),
        rss as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
        peak as f64 / 1024.0,
        (rss.saturating_sub(idle_kib)) as f64 / args.connections.max(1) as f64
    );
    drop(held);
    std::thread::sleep(Duration::from_secs(2));
    let (after, _) = rss_kib(pid)?;
    println!(
        "after closing them: broker RSS {:.1} MiB",
        after as f64 / 1024.0
    );
    Ok(())
}
