//! Runs a target on mutated seeds and reports what broke it.
//!
//! A campaign draws a seed, mutates it ([`crate::mutate`]) and runs the
//! target on it under `catch_unwind`, until it has run its executions or
//! its time is up. A panic (or a failed target assertion) is a failure:
//! the input and the panic message are kept, and [`save_failure`] writes
//! the input to the target's corpus as `crash-<hash>` so every later
//! replay runs it. An abort (an allocation the process may not make, a
//! stack overflow) cannot be caught: it ends the campaign's process, which
//! is how a campaign under an address-space limit shows one.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::corpus::corpus_dir;
use crate::mutate::mutate;
use crate::rng::Rng;
use crate::targets::Target;

/// An input that made a target panic.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message and where it was raised.
    pub message: String,
}

/// What a campaign did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Inputs run.
    pub executions: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Inputs that made the target panic (at most [`MAX_FAILURES_KEPT`]).
    pub failures: Vec<Failure>,
}

/// Failures kept per campaign; the rest are counted by their first.
pub const MAX_FAILURES_KEPT: usize = 16;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps the panic hook once per process: a panic inside [`run_one`] is
/// recorded for it instead of printed (a campaign expects panics and
/// reports them itself); any other panic goes to the previous hook.
fn install_quiet_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(|t| t.get()) {
                return previous(info);
            }
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "a panic".into()),
            };
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{place}")));
        }));
    });
}

/// Runs `target` on `input`; the panic message if it panicked.
pub fn run_one(target: &Target, input: &[u8]) -> Option<String> {
    install_quiet_hook();
    IN_TARGET.with(|t| t.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    IN_TARGET.with(|t| t.set(false));
    match outcome {
        Ok(()) => None,
        Err(_) => Some(
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "a panic".into()),
        ),
    }
}

/// Runs `executions` mutated inputs drawn from `seeds` (each seed itself
/// first), or until `deadline`.
pub fn run(
    target: &Target,
    seeds: &[Vec<u8>],
    executions: u64,
    seed: u64,
    deadline: Option<Instant>,
) -> Report {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    let mut done = 0u64;
    let record = |input: &[u8], failures: &mut Vec<Failure>| {
        if let Some(message) = run_one(target, input) {
            if failures.len() < MAX_FAILURES_KEPT {
                failures.push(Failure {
                    input: input.to_vec(),
                    message,
                });
            }
        }
    };
    for s in seeds {
        record(s, &mut failures);
        done += 1;
    }
    let mut input = Vec::new();
    while done < executions {
        if done.is_multiple_of(256) && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        input.clear();
        if let Some(s) = rng.pick(seeds) {
            input.extend_from_slice(s);
        }
        mutate(&mut input, seeds, &mut rng);
        record(&input, &mut failures);
        done += 1;
    }
    Report {
        target: target.name,
        executions: done,
        elapsed: started.elapsed(),
        failures,
    }
}

/// FNV-1a, for naming a crash file by its content.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes a failure's input into the target's corpus as `crash-<hash>`.
pub fn save_failure(target: &str, failure: &Failure) -> std::io::Result<PathBuf> {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("crash-{:016x}", fnv1a(&failure.input)));
    std::fs::write(&path, &failure.input)?;
    Ok(path)
}
