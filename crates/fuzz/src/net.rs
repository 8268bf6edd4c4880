//! The network fuzzer: mutated request frames to a live broker over many
//! connections at once, as a hostile or broken client would send them.
//!
//! Each connection is a thread that sends one frame at a time, built from
//! the `request` seeds (a default request of every served API and
//! version, and frames captured from real clients): usually a mutated body
//! under a correct size prefix, so the frame reaches the decoders; one in
//! sixteen a mutated size prefix or raw bytes, for the frame splitter. It
//! then waits for the outcome before the next frame, so every frame
//! counted was read by the broker: an answer, the connection closed (what
//! the broker does with a frame it cannot decode; the worker opens
//! another), or no answer within [`ANSWER_WAIT`] (acks=0 produces, long
//! polls; after a few in a row the worker opens another connection).
//! Frames of APIs that create topics or partitions are left out, so a long
//! campaign does not fill the disk with topics (their decoders are fuzzed
//! in process); the broker should run with `auto.create.topics.enable=false`
//! for the same reason.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Frames the broker read.
    pub frames_sent: u64,
    /// Frames it answered.
    pub answered: u64,
    /// Frames after which it closed the connection.
    pub closed: u64,
    /// Frames with no answer within [`ANSWER_WAIT`].
    pub unanswered: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

/// How long a worker waits for a frame's answer.
pub const ANSWER_WAIT: Duration = Duration::from_millis(100);

/// Unanswered frames in a row after which a worker reconnects.
const UNANSWERED_BEFORE_RECONNECT: u32 = 3;

/// Counters the workers share.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    answered: AtomicU64,
    closed: AtomicU64,
    unanswered: AtomicU64,
    opened: AtomicU64,
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
    let counters = Arc::new(Counters::default());
    let workers: Vec<_> = (0..config.connections.max(1))
        .map(|i| {
            let seeds = Arc::clone(&seeds);
            let counters = Arc::clone(&counters);
            let address = config.address.clone();
            let frames = config.frames;
            let seed = config.seed.wrapping_add(i as u64);
            std::thread::spawn(move || worker(&address, &seeds, seed, frames, deadline, &counters))
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Ok(NetReport {
        frames_sent: load(&counters.sent),
        answered: load(&counters.answered),
        closed: load(&counters.closed),
        unanswered: load(&counters.unanswered),
        connections_opened: load(&counters.opened),
        elapsed: started.elapsed(),
    })
}

/// What became of one frame.
enum Outcome {
    Answered,
    Closed,
    Unanswered,
}

/// Reads the answer to the frame just sent.
fn await_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Outcome {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            return Outcome::Unanswered
        }
        Err(_) => return Outcome::Closed,
    }
    let len = usize::try_from(i32::from_be_bytes(size)).unwrap_or(0);
    buf.resize(len.min(MAX_ANSWER_BYTES), 0);
    if len > MAX_ANSWER_BYTES || stream.read_exact(buf).is_err() {
        // Out of step with the stream: this connection is done.
        return Outcome::Closed;
    }
    Outcome::Answered
}

/// The largest answer a worker reads (a fetch of the test topics).
const MAX_ANSWER_BYTES: usize = 64 << 20;

fn worker(
    address: &str,
    seeds: &[Vec<u8>],
    seed: u64,
    frames: u64,
    deadline: Instant,
    counters: &Counters,
) {
    let mut rng = Rng::new(seed);
    let mut body = Vec::new();
    let mut out = Vec::new();
    let mut answer = Vec::new();
    let more = || counters.sent.load(Ordering::Relaxed) < frames && Instant::now() < deadline;
    while more() {
        let Ok(mut stream) = TcpStream::connect(address) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        counters.opened.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_read_timeout(Some(ANSWER_WAIT));
        let mut unanswered_in_a_row = 0;
        while more() && unanswered_in_a_row < UNANSWERED_BEFORE_RECONNECT {
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
            if stream.write_all(&out).is_err() {
                break;
            }
            counters.sent.fetch_add(1, Ordering::Relaxed);
            match await_answer(&mut stream, &mut answer) {
                Outcome::Answered => {
                    unanswered_in_a_row = 0;
                    counters.answered.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Unanswered => {
                    unanswered_in_a_row += 1;
                    counters.unanswered.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Closed => {
                    counters.closed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
    }
}
