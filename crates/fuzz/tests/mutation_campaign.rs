//! A short campaign of every target, as part of `tests/run`: mutated seeds
//! for a few seconds per target, no panic allowed. Longer campaigns run
//! with `cargo run --release -p strom-fuzz -- run` (figures in the README).
//! The process runs under an address-space limit, as a host that does not
//! overcommit memory: a decoder reserving memory from a claimed count
//! aborts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strom_fuzz::campaign;
use strom_fuzz::corpus::seeds;
use strom_fuzz::targets::TARGETS;

/// Time per target.
const SECONDS_PER_TARGET: u64 = 2;
/// The campaign's address-space limit.
const ADDRESS_SPACE_LIMIT_BYTES: u64 = 8 << 30;

fn limit_address_space() {
    let limit = libc::rlimit {
        rlim_cur: ADDRESS_SPACE_LIMIT_BYTES,
        rlim_max: ADDRESS_SPACE_LIMIT_BYTES,
    };
    // SAFETY: setrlimit only reads the struct passed.
    #[allow(unsafe_code)]
    let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(r, 0, "setrlimit");
}

#[test]
fn a_short_campaign_of_every_target_finds_no_panic() {
    limit_address_space();
    let seed = std::env::var("STROM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut failures = Vec::new();
    let mut total = 0;
    for target in TARGETS {
        let deadline = Instant::now() + Duration::from_secs(SECONDS_PER_TARGET);
        let report = campaign::run(target, &seeds(target.name), u64::MAX, seed, Some(deadline));
        total += report.executions;
        assert!(
            report.executions > 100,
            "{}: only {} executions",
            target.name,
            report.executions
        );
        for f in report.failures {
            failures.push(format!(
                "{}: {} (input {:02x?})",
                target.name, f.message, f.input
            ));
        }
    }
    eprintln!("{total} executions, seed {seed}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
