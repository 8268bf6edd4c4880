//! Whether this node is ready for traffic (`/readyz`), as a list of named
//! checks so that an operator reading the answer sees which one fails.
//!
//! A broker is ready once the metadata quorum has a leader, the broker is
//! registered and unfenced (the controller unfences a broker once it has
//! caught up with the metadata log), the partitions reflect all the
//! metadata this node has applied, and every partition it is a replica of
//! has it back in the ISR, unless its leader is not live (then there is
//! nothing to catch up from) or a reassignment is still adding it. During
//! a rolling restart that last check is what keeps the next pod from
//! stopping before this one serves its partitions again; it applies from
//! start-up until the broker is first ready, not to later lag. A broker that is
//! shutting down is not ready. A controller-only node is ready once the
//! quorum has a leader.

use std::fmt::Write as _;

use crate::state::BrokerState;

/// Partitions named in a failing in-sync check at most.
const NAMED_PARTITIONS_MAX: usize = 5;

/// One check and, when it fails, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Why it fails; `None` when it passes.
    pub problem: Option<String>,
}

/// The checks, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Every check made.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Whether every check passes.
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }

    /// One line per check: `[+]name ok` or `[-]name failed: why`, as
    /// Kubernetes' own `/readyz?verbose`.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = match &c.problem {
                None => writeln!(out, "[+]{} ok", c.name),
                Some(why) => writeln!(out, "[-]{} failed: {why}", c.name),
            };
        }
        out.push_str(if self.is_ready() {
            "ready\n"
        } else {
            "not ready\n"
        });
        out
    }

    fn check(&mut self, name: &'static str, problem: Option<String>) {
        self.checks.push(Check { name, problem });
    }
}

/// Assesses `state`, `None` while the node is still starting.
pub fn assess(state: Option<&BrokerState>) -> Readiness {
    let mut r = Readiness { checks: Vec::new() };
    let Some(state) = state else {
        r.check("started", Some("the node is starting".into()));
        return r;
    };
    r.check("started", None);
    r.check(
        "not-stopping",
        state
            .lifecycle
            .is_shutting_down()
            .then(|| "the node is shutting down".into()),
    );
    let quorum = state.controller.quorum();
    r.check(
        "quorum-leader",
        quorum
            .leader()
            .is_none()
            .then(|| "the metadata quorum has no leader".into()),
    );
    if !state.config.is_broker() {
        return r;
    }
    let node_id = state.node_id();
    r.check(
        "registered",
        (state.lifecycle.broker_epoch() < 0).then(|| "not registered with the controller".into()),
    );
    let image = state.image();
    let fenced = state.lifecycle.is_fenced() || !image.is_broker_online(node_id);
    r.check(
        "unfenced",
        fenced.then(|| "the controller has this broker fenced".into()),
    );
    let applied = quorum
        .applied_index()
        .map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX));
    r.check(
        "metadata-applied",
        (image.offset < applied).then(|| {
            format!(
                "the partitions reflect metadata up to offset {}, the quorum has applied {applied}",
                image.offset
            )
        }),
    );
    // Once this broker has been back in the ISR of its partitions after
    // starting, later lag does not make it unready: readiness gates the
    // restart, and a pod dropped from the client Service for a slow
    // follower would only make things worse.
    let out_of_sync: Vec<String> = if state.lifecycle.has_caught_up() {
        Vec::new()
    } else {
        image
            .partitions_awaiting_replica(node_id)
            .into_iter()
            .map(|(topic, partition)| format!("{topic}-{partition}"))
            .collect()
    };
    r.check(
        "replicas-in-sync",
        (!out_of_sync.is_empty()).then(|| {
            let named: Vec<&str> = out_of_sync
                .iter()
                .take(NAMED_PARTITIONS_MAX)
                .map(String::as_str)
                .collect();
            format!(
                "{} partitions wait for this replica to rejoin their ISR ({}{})",
                out_of_sync.len(),
                named.join(", "),
                if out_of_sync.len() > named.len() {
                    ", ..."
                } else {
                    ""
                }
            )
        }),
    );
    if r.is_ready() {
        state.lifecycle.caught_up();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_each_failing_check() {
        let r = Readiness {
            checks: vec![
                Check {
                    name: "started",
                    problem: None,
                },
                Check {
                    name: "unfenced",
                    problem: Some("fenced".into()),
                },
            ],
        };
        assert!(!r.is_ready());
        assert_eq!(
            r.report(),
            "[+]started ok\n[-]unfenced failed: fenced\nnot ready\n"
        );
        assert!(assess(None).report().contains("[-]started failed"));
    }
}
