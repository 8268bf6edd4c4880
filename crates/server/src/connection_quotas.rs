//! Limits on client connections, checked as each one is accepted (Kafka's
//! `ConnectionQuotas`), one set shared by every client listener:
//!
//! - `max.connection.creation.rate` (connections per second, broker-wide):
//!   past it, accepting is *delayed*, not refused, as Kafka throttles its
//!   acceptor: the listener holds the socket it just accepted until the rate
//!   allows it and accepts nothing else meanwhile, so later connections wait
//!   in the kernel's listen backlog. Connections on the inter-broker listener
//!   are exempt, as in Kafka. Kafka measures the rate over
//!   `quota.window.num` one-second samples (11), so a fresh broker lets a
//!   burst of about ten seconds' worth through; here it is a token bucket
//!   holding one second's worth, a stricter bound with the same long-run
//!   rate.
//! - `max.connections` (broker-wide) and `max.connections.per.ip`, with
//!   `max.connections.per.ip.overrides` (`host:count,...`; hostnames are
//!   resolved once, at start-up, as Kafka resolves them when the config is
//!   applied): one connection past either limit is closed as soon as it is
//!   accepted, with a log line naming the limit and the peer, and counted in
//!   `strom_connections_refused_total{listener, limit}`. Kafka refuses past
//!   the per-IP limit the same way (`TooManyConnectionsException`); past
//!   `max.connections` Kafka instead stops accepting until a slot frees (the
//!   inter-broker listener may take one anyway); Strom closes the new
//!   connection, so a flood never sits in the backlog in front of clients.
//!
//! A [`ConnectionSlot`] is held for as long as the connection is open and
//! gives its counts back when dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::IntCounterVec;

/// Which limit refused a connection (the config key, as logged and as the
/// metric's `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max.connections`.
    MaxConnections {
        /// The limit.
        max: usize,
    },
    /// `max.connections.per.ip` (or its override for this address).
    MaxConnectionsPerIp {
        /// The limit for this address.
        max: usize,
    },
}

impl Refusal {
    /// The config key of the limit.
    pub fn key(&self) -> &'static str {
        match self {
            Refusal::MaxConnections { .. } => "max.connections",
            Refusal::MaxConnectionsPerIp { .. } => "max.connections.per.ip",
        }
    }

    /// The limit's value.
    pub fn max(&self) -> usize {
        match self {
            Refusal::MaxConnections { max } | Refusal::MaxConnectionsPerIp { max } => *max,
        }
    }
}

/// What the quotas allow.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// `max.connections`.
    pub max_connections: usize,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides`, resolved to addresses.
    pub per_ip_overrides: HashMap<IpAddr, usize>,
    /// `max.connection.creation.rate`, connections per second.
    pub creation_rate_per_sec: u32,
    /// `inter.broker.listener.name`: exempt from the creation rate.
    pub inter_broker_listener: String,
}

impl ConnectionLimits {
    /// The limits of `config`, resolving the override hosts (hostnames by
    /// the system resolver; a host that does not resolve is logged and
    /// skipped, as Kafka would fail to apply it).
    pub fn from_config(config: &strom_config::BrokerConfig) -> Self {
        let mut per_ip_overrides = HashMap::new();
        for (host, count) in &config.max_connections_per_ip_overrides {
            let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => match (host.as_str(), 0).to_socket_addrs() {
                    Ok(found) => found.map(|a| a.ip()).collect(),
                    Err(e) => {
                        tracing::warn!(host, error = %e, "max.connections.per.ip.overrides: cannot resolve host; its override is ignored");
                        Vec::new()
                    }
                },
            };
            for ip in addresses {
                per_ip_overrides.insert(ip, *count);
            }
        }
        Self {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            per_ip_overrides,
            creation_rate_per_sec: config.max_connection_creation_rate_per_sec,
            inter_broker_listener: config.inter_broker_listener_name.clone(),
        }
    }
}

/// The metrics the quotas count in.
#[derive(Debug, Clone)]
pub struct ConnectionQuotaMetrics {
    /// Connections closed at accept, by listener and limit.
    pub refused: IntCounterVec,
    /// Connections whose accept the creation rate delayed, by listener.
    pub throttled: IntCounterVec,
    /// Seconds of those delays, by listener.
    pub throttle_seconds: prometheus::CounterVec,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A token bucket: `per_sec` tokens a second, at most one second's worth
/// saved up. Each accept reserves a token, waiting for it if it is not
/// there yet; reservations queue, so listeners sharing it share the rate.
#[derive(Debug)]
struct CreationRate {
    per_sec: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl CreationRate {
    fn new(per_sec: u32, now: Instant) -> Self {
        let per_sec = f64::from(per_sec.max(1));
        Self {
            per_sec,
            tokens: per_sec,
            refilled_at: now,
        }
    }

    /// Reserves one connection; how long to wait before accepting it.
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.per_sec);
        self.refilled_at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_sec)
        }
    }
}

/// The broker's connection quotas; see the module documentation.
#[derive(Debug)]
pub struct ConnectionQuotas {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
    rate: Mutex<CreationRate>,
    metrics: ConnectionQuotaMetrics,
}

impl ConnectionQuotas {
    /// Quotas with no connection open.
    pub fn new(limits: ConnectionLimits, metrics: ConnectionQuotaMetrics) -> Arc<Self> {
        let rate = CreationRate::new(limits.creation_rate_per_sec, Instant::now());
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
            rate: Mutex::new(rate),
            metrics,
        })
    }

    /// What the quotas allow.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Waits until `max.connection.creation.rate` allows one more
    /// connection on `listener` (at once on the inter-broker listener).
    pub async fn throttle_creation(&self, listener: &str, peer: SocketAddr) {
        if listener == self.limits.inter_broker_listener {
            return;
        }
        let wait = self.rate.lock().reserve(Instant::now());
        if wait.is_zero() {
            return;
        }
        self.metrics.throttled.with_label_values(&[listener]).inc();
        self.metrics
            .throttle_seconds
            .with_label_values(&[listener])
            .inc_by(wait.as_secs_f64());
        tracing::debug!(
            %peer,
            listener,
            wait_ms = wait.as_millis() as u64,
            max_connection_creation_rate = self.limits.creation_rate_per_sec,
            "max.connection.creation.rate reached: delaying the accept"
        );
        tokio::time::sleep(wait).await;
    }

    /// The per-IP limit for `ip`.
    pub fn max_for(&self, ip: IpAddr) -> usize {
        self.limits
            .per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.limits.max_connections_per_ip)
    }

    /// Counts a new connection from `peer` on `listener` if every limit
    /// allows it; otherwise logs and counts the refusal, and the caller
    /// closes the socket.
    pub fn try_open(
        self: &Arc<Self>,
        peer: SocketAddr,
        listener: &str,
    ) -> Result<ConnectionSlot, Refusal> {
        let ip = canonical(peer.ip());
        let refusal = {
            let mut counts = self.counts.lock();
            let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
            let per_ip_max = self.max_for(ip);
            if counts.total >= self.limits.max_connections {
                Some(Refusal::MaxConnections {
                    max: self.limits.max_connections,
                })
            } else if from_ip >= per_ip_max {
                Some(Refusal::MaxConnectionsPerIp { max: per_ip_max })
            } else {
                counts.total += 1;
                *counts.per_ip.entry(ip).or_insert(0) += 1;
                None
            }
        };
        match refusal {
            None => Ok(ConnectionSlot {
                quotas: Arc::clone(self),
                ip,
            }),
            Some(refusal) => {
                self.metrics
                    .refused
                    .with_label_values(&[listener, refusal.key()])
                    .inc();
                tracing::info!(
                    %peer,
                    listener,
                    limit = refusal.key(),
                    max = refusal.max(),
                    "refusing connection: {} reached ({} open)",
                    refusal.key(),
                    refusal.max()
                );
                Err(refusal)
            }
        }
    }

    fn close(&self, ip: IpAddr) {
        let mut counts = self.counts.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// An IPv4 client on a dual-stack socket arrives as `::ffff:a.b.c.d`; it is
/// counted (and overridden) as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// One open connection's place in the counts, given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.quotas.close(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{CounterVec, Opts};

    fn quotas(max: usize, per_ip: usize, overrides: &[(&str, usize)]) -> Arc<ConnectionQuotas> {
        ConnectionQuotas::new(
            ConnectionLimits {
                max_connections: max,
                max_connections_per_ip: per_ip,
                per_ip_overrides: overrides
                    .iter()
                    .map(|(h, n)| (h.parse().unwrap(), *n))
                    .collect(),
                creation_rate_per_sec: 5,
                inter_broker_listener: "INTERNAL".into(),
            },
            ConnectionQuotaMetrics {
                refused: IntCounterVec::new(Opts::new("r", "r"), &["listener", "limit"]).unwrap(),
                throttled: IntCounterVec::new(Opts::new("t", "t"), &["listener"]).unwrap(),
                throttle_seconds: CounterVec::new(Opts::new("s", "s"), &["listener"]).unwrap(),
            },
        )
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn per_ip_limits_and_overrides() {
        let q = quotas(100, 2, &[("127.0.0.2", 3)]);
        let a: Vec<_> = (0..2)
            .map(|_| q.try_open(peer("127.0.0.1"), "PLAINTEXT").unwrap())
            .collect();
        assert_eq!(
            q.try_open(peer("127.0.0.1"), "PLAINTEXT").unwrap_err(),
            Refusal::MaxConnectionsPerIp { max: 2 }
        );
        // The same client over IPv6-mapped IPv4 counts as the same address.
        assert!(q.try_open(peer("::ffff:127.0.0.1"), "PLAINTEXT").is_err());
        let b: Vec<_> = (0..3)
            .map(|_| q.try_open(peer("127.0.0.2"), "PLAINTEXT").unwrap())
            .collect();
        assert!(q.try_open(peer("127.0.0.2"), "PLAINTEXT").is_err());
        assert_eq!(
            q.metrics
                .refused
                .with_label_values(&["PLAINTEXT", "max.connections.per.ip"])
                .get(),
            3
        );
        drop(a);
        assert!(q.try_open(peer("127.0.0.1"), "PLAINTEXT").is_ok());
        drop(b);
        assert!(
            q.counts.lock().per_ip.is_empty(),
            "slots give their counts back"
        );
    }

    #[test]
    fn max_connections_counts_every_address() {
        let q = quotas(2, 10, &[]);
        let _a = q.try_open(peer("127.0.0.1"), "PLAINTEXT").unwrap();
        let _b = q.try_open(peer("127.0.0.2"), "PLAINTEXT").unwrap();
        assert_eq!(
            q.try_open(peer("127.0.0.3"), "PLAINTEXT").unwrap_err(),
            Refusal::MaxConnections { max: 2 }
        );
    }

    #[test]
    fn the_creation_rate_saves_up_one_second() {
        let start = Instant::now();
        let mut rate = CreationRate::new(5, start);
        for _ in 0..5 {
            assert_eq!(rate.reserve(start), Duration::ZERO);
        }
        // The 6th waits a fifth of a second, the 10th a whole one.
        let sixth = rate.reserve(start);
        assert!((sixth.as_secs_f64() - 0.2).abs() < 1e-6, "{sixth:?}");
        for _ in 0..3 {
            rate.reserve(start);
        }
        let tenth = rate.reserve(start);
        assert!((tenth.as_secs_f64() - 1.0).abs() < 1e-6, "{tenth:?}");
        // Ten idle seconds later only one second's worth is saved up.
        let later = start + Duration::from_secs(12);
        for _ in 0..5 {
            assert_eq!(rate.reserve(later), Duration::ZERO);
        }
        assert!(rate.reserve(later) > Duration::ZERO);
    }

    #[tokio::test]
    async fn the_inter_broker_listener_is_not_throttled() {
        let q = quotas(100, 100, &[]);
        for _ in 0..50 {
            q.throttle_creation("INTERNAL", peer("127.0.0.1")).await;
        }
        assert_eq!(
            q.metrics.throttled.with_label_values(&["INTERNAL"]).get(),
            0
        );
    }
}
