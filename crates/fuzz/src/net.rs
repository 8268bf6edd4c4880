//! The network fuzzer: mutated request frames to a live broker over many
//! connections at once, as a hostile or broken client would send them.
//!
//! Each connection is a thread that sends frames built from the `request`
//! seeds (a default request of every served API and version, and frames
//! captured from real clients): usually a mutated body under a correct
//! size prefix, so the frame reaches the decoders; one in sixteen a
//! mutated size prefix or raw bytes, for the frame splitter. A second
//! thread per connection reads whatever comes back, so the broker never
//! waits on a full socket. When the broker closes a connection (what it
//! does with a frame it cannot decode) the worker opens another. Frames
//! of APIs that create topics or partitions are left out, so a long
//! campaign does not fill the disk with topics (their decoders are fuzzed
//! in process); the broker should run with `auto.create.topics.enable=false`
//! for the same reason.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

use crate::corpus::{corpus_files, request_frames};
use crate::mutate::mutate;
use crate::rng::Rng;

/// What to run.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The broker's Kafka listener, `host:port`.
    pub address: String,
    /// Connections (one sending thread each).
    pub connections: usize,
    /// Frames to send in all.
    pub frames: u64,
    /// Stop after this long even if frames remain.
    pub max_duration: Duration,
    /// The campaign's seed.
    pub seed: u64,
}

/// What a network campaign did.
#[derive(Debug, Clone, Default)]
pub struct NetReport {
    /// Frames written.
    pub frames_sent: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Bytes the broker answered with.
    pub bytes_received: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

/// APIs whose frames the network fuzzer does not send (see the module).
const LEFT_OUT: [ApiKey; 2] = [ApiKey::CreateTopics, ApiKey::CreatePartitions];

/// The seeds: request frame bodies of every served API but [`LEFT_OUT`].
pub fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = corpus_files("request")
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    seeds.extend(request_frames());
    seeds.retain(|body| {
        let key = body
            .get(0..2)
            .and_then(|b| b.try_into().ok())
            .map(i16::from_be_bytes)
            .unwrap_or(-1);
        !LEFT_OUT.iter().any(|api| *api as i16 == key)
    });
    seeds
}

/// Runs the campaign; fails only if the broker cannot be reached at all.
pub fn run(config: &NetConfig) -> std::io::Result<NetReport> {
    // The broker must be there to begin with.
    drop(TcpStream::connect(&config.address)?);
    let seeds = Arc::new(seeds());
    let started = Instant::now();
    let deadline = started + config.max_duration;
    let sent = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..config.connections.max(1))
        .map(|i| {
            let seeds = Arc::clone(&seeds);
            let (sent, opened, received) = (
                Arc::clone(&sent),
                Arc::clone(&opened),
                Arc::clone(&received),
            );
            let address = config.address.clone();
            let frames = config.frames;
            let seed = config.seed.wrapping_add(i as u64);
            std::thread::spawn(move || {
                worker(
                    &address, &seeds, seed, frames, deadline, &sent, &opened, &received,
                )
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    Ok(NetReport {
        frames_sent: sent.load(Ordering::Relaxed),
        connections_opened: opened.load(Ordering::Relaxed),
        bytes_received: received.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

#[allow(clippy::too_many_arguments)]
fn worker(
    address: &str,
    seeds: &[Vec<u8>],
    seed: u64,
    frames: u64,
    deadline: Instant,
    sent: &AtomicU64,
    opened: &AtomicU64,
    received: &Arc<AtomicU64>,
) {
    let mut rng = Rng::new(seed);
    let mut body = Vec::new();
    let mut out = Vec::new();
    while sent.load(Ordering::Relaxed) < frames && Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(address) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let done = Arc::new(AtomicBool::new(false));
        let reader = stream.try_clone().ok().map(|mut r| {
            let received = Arc::clone(received);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                let _ = r.set_read_timeout(Some(Duration::from_millis(200)));
                loop {
                    match r.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            received.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            if done.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            })
        });
        // Up to a few dozen frames per connection: a bad one ends it.
        let per_connection = 1 + rng.below(48);
        for _ in 0..per_connection {
            if sent.load(Ordering::Relaxed) >= frames || Instant::now() >= deadline {
                break;
            }
            body.clear();
            if let Some(s) = rng.pick(seeds) {
                body.extend_from_slice(s);
            }
            if !rng.one_in(8) {
                mutate(&mut body, seeds, &mut rng);
            }
            out.clear();
            out.extend_from_slice(&(body.len() as i32).to_be_bytes());
            out.extend_from_slice(&body);
            if rng.one_in(16) {
                // The size prefix or the framing itself.
                mutate(&mut out, &[], &mut rng);
            }
            sent.fetch_add(1, Ordering::Relaxed);
            if stream.write_all(&out).is_err() {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        let _ = stream.shutdown(Shutdown::Write);
        if let Some(r) = reader {
            let _ = r.join();
        }
    }
}
