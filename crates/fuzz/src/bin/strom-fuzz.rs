//! `strom-fuzz`: runs fuzz campaigns of Strom's decoders in process, or
//! sends mutated frames to a live broker.
//!
//! ```text
//! strom-fuzz run [--target NAME]... [--executions N] [--seconds S] [--seed N] [--save]
//! strom-fuzz net --address 127.0.0.1:9092 [--connections N] [--frames N] [--seconds S] [--seed N]
//! strom-fuzz list
//! ```

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use strom_fuzz::campaign::{self, save_failure};
use strom_fuzz::corpus::seeds;
use strom_fuzz::net::{self, NetConfig};
use strom_fuzz::targets::{target, TARGETS};

#[derive(Debug, Parser)]
#[command(name = "strom-fuzz", about = "Fuzz campaigns of Strom's decoders")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs targets in process on mutated seeds.
    Run {
        /// Targets to run (default: all).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Executions per target.
        #[arg(long, default_value_t = 1_000_000)]
        executions: u64,
        /// Time limit per target, in seconds.
        #[arg(long)]
        seconds: Option<u64>,
        /// The campaign's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write failing inputs into the corpus as `crash-*`.
        #[arg(long)]
        save: bool,
    },
    /// Sends mutated frames to a live broker.
    Net {
        /// The broker's Kafka listener.
        #[arg(long, default_value = "127.0.0.1:9092")]
        address: String,
        /// Connections at once.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Frames in all.
        #[arg(long, default_value_t = 1_000_000)]
        frames: u64,
        /// Time limit, in seconds.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
        /// The campaign's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Lists the targets and their seed counts.
    List,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::List => {
            for t in TARGETS {
                println!("{:<24} {} seeds", t.name, seeds(t.name).len());
            }
        }
        Command::Run {
            targets,
            executions,
            seconds,
            seed,
            save,
        } => {
            let chosen: Vec<_> = if targets.is_empty() {
                TARGETS.to_vec()
            } else {
                targets
                    .iter()
                    .map(|n| target(n).ok_or_else(|| anyhow::anyhow!("no target {n}")))
                    .collect::<anyhow::Result<_>>()?
            };
            let mut total = 0u64;
            let mut failed = 0usize;
            for t in &chosen {
                let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
                let report = campaign::run(t, &seeds(t.name), executions, seed, deadline);
                total += report.executions;
                failed += report.failures.len();
                println!(
                    "{:<24} {:>11} executions {:>8.1} s {:>10.0}/s {} failures",
                    t.name,
                    report.executions,
                    report.elapsed.as_secs_f64(),
                    report.executions as f64 / report.elapsed.as_secs_f64().max(1e-9),
                    report.failures.len()
                );
                for f in &report.failures {
                    println!("    {} ({} bytes)", f.message, f.input.len());
                    if save {
                        println!("    saved as {}", save_failure(t.name, f)?.display());
                    }
                }
            }
            println!("total {total} executions, {failed} failures");
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Command::Net {
            address,
            connections,
            frames,
            seconds,
            seed,
        } => {
            let report = net::run(&NetConfig {
                address,
                connections,
                frames,
                max_duration: Duration::from_secs(seconds),
                seed,
            })?;
            println!(
                "{} frames on {} connections in {:.1} s ({:.0} frames/s): {} answered, {} closed the connection, {} unanswered within {:?}",
                report.frames_sent,
                report.connections_opened,
                report.elapsed.as_secs_f64(),
                report.frames_sent as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.answered,
                report.closed,
                report.unanswered,
                net::ANSWER_WAIT
            );
        }
    }
    Ok(())
}
