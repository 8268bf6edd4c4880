//! Helpers for end-to-end tests: start real `strom` processes on free
//! loopback ports with their own data directories, wait until they answer,
//! kill or stop them, and talk to them with a small blocking Kafka client
//! built on the `kafka-protocol` messages (including deliberately broken
//! frames).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// Ports handed to test processes: below the kernel's ephemeral range
/// (32768 and up here), so an outgoing connection never takes a port a
/// broker is about to listen on.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free TCP port, drawn at random from [`TEST_PORTS`] and reserved
/// across test processes (nextest runs each test in its own): a port is
/// handed out only after creating `<tmp>/strom-test-ports/<port>` with
/// this process's id, and a file whose process is gone is taken over. A
/// port must also be bindable right now.
pub fn free_port() -> u16 {
    let mut seed = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut seed);
    }
    let mut x = u64::from_le_bytes(seed) | 1;
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    let registry = std::env::temp_dir().join("strom-test-ports");
    let _ = std::fs::create_dir_all(&registry);
    for _ in 0..10_000 {
        // xorshift
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = TEST_PORTS.start + (x % span) as u16;
        if reserve_port(&registry, port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Claims `port` for this process in `registry`; false when a live
/// process holds it. The claim file appears whole (hard-linked from a
/// written temporary file), so a reader never sees it half written.
fn reserve_port(registry: &Path, port: u16) -> bool {
    let path = registry.join(port.to_string());
    let me = std::process::id();
    let tmp = registry.join(format!("{port}.{me}.tmp"));
    if std::fs::write(&tmp, me.to_string()).is_err() {
        return false;
    }
    let mut claimed = false;
    for _ in 0..2 {
        if std::fs::hard_link(&tmp, &path).is_ok() {
            claimed = true;
            break;
        }
        let holder = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        match holder {
            // SAFETY: signal 0 only checks that the process exists.
            #[allow(unsafe_code)]
            Some(pid) if unsafe { libc::kill(pid, 0) } == 0 => break,
            // Its process is gone: take it over.
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    claimed
}

/// Polls `check` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `strom` process.
pub struct BrokerProcess {
    binary: PathBuf,
    child: Option<Child>,
    /// Host of the PLAINTEXT listener (a loopback address).
    pub host: String,
    /// Port of the PLAINTEXT listener.
    pub port: u16,
    /// Port of the HTTP endpoint (metrics, health), on `host`.
    pub http_port: u16,
    /// Data directory (log.dirs).
    pub data_dir: PathBuf,
    /// Extra `--override` settings.
    pub overrides: Vec<String>,
    /// The broker's `STROM_LOG` filter.
    pub log_filter: String,
    /// A controller-only node: `port` is its controller listener, which
    /// does not speak Kafka, so readiness is a TCP connection there.
    pub controller_only: bool,
    /// A properties file passed with `--config`; its listeners are used
    /// as they are (`port` must be its client port).
    pub config_file: Option<PathBuf>,
    /// Extra environment variables (a fault-injection preload, say).
    pub env: Vec<(String, String)>,
    /// The process's address-space limit (`RLIMIT_AS`), in bytes: a host
    /// that does not overcommit memory, where an allocation beyond what the
    /// process may map fails at once.
    pub address_space_limit_bytes: Option<u64>,
    log_path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    /// Starts a broker with a fresh data directory and port.
    pub fn start(binary: impl AsRef<Path>, overrides: &[&str]) -> Result<Self> {
        Self::start_with_log(binary, overrides, "info,strom_server=debug")
    }

    /// Starts a broker that logs at `log_filter` (benchmarks use `warn`).
    pub fn start_with_log(
        binary: impl AsRef<Path>,
        overrides: &[&str],
        log_filter: &str,
    ) -> Result<Self> {
        let mut b = Self::prepare(binary, free_port(), overrides, log_filter)?;
        b.spawn()?;
        Ok(b)
    }

    /// A broker on `port`, with a fresh data directory, not started yet.
    pub fn prepare(
        binary: impl AsRef<Path>,
        port: u16,
        overrides: &[&str],
        log_filter: &str,
    ) -> Result<Self> {
        let temp = tempfile::tempdir()?;
        Ok(Self {
            binary: binary.as_ref().to_path_buf(),
            child: None,
            host: "127.0.0.1".into(),
            port,
            http_port: free_port(),
            data_dir: temp.path().join("data"),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            log_filter: log_filter.into(),
            controller_only: false,
            config_file: None,
            env: Vec::new(),
            address_space_limit_bytes: None,
            log_path: temp.path().join("broker.log"),
            _temp: Some(temp),
        })
    }

    /// The broker's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `<host>:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Starts the process (again) with the same directory and port, and
    /// waits until it answers ApiVersions.
    pub fn spawn(&mut self) -> Result<()> {
        self.launch()?;
        self.wait_ready(Duration::from_secs(30))
    }

    /// Starts the process without waiting for it (members of a quorum wait
    /// for each other).
    pub fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve");
        match &self.config_file {
            Some(file) => cmd.arg("--config").arg(file),
            None => cmd
                .arg("--override")
                .arg(format!("listeners=PLAINTEXT://{}:{}", self.host, self.port)),
        };
        cmd.arg("--override")
            .arg(format!("log.dirs={}", self.data_dir.display()))
            .arg("--override")
            .arg(format!("http.listener={}:{}", self.host, self.http_port));
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.env("STROM_LOG", &self.log_filter)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(bytes) = self.address_space_limit_bytes {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the closure only calls
            // setrlimit, which is async-signal-safe, on a struct it owns.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        self.child = Some(cmd.spawn().context("spawn strom")?);
        Ok(())
    }

    /// Waits until the broker answers an ApiVersions request.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "strom exited with {status} during start-up; log:\n{}",
                        self.log()
                    );
                }
            }
            if self.controller_only {
                if std::net::TcpStream::connect(self.bootstrap()).is_ok() {
                    return Ok(());
                }
            } else if let Ok(mut c) = KafkaConnection::connect(&self.bootstrap()) {
                if c.send(ApiKey::ApiVersions, 3, &api_versions_request())
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "strom did not become ready in {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `GET path` on the HTTP endpoint: the status code and the body.
    pub fn http_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(&format!("{}:{}", self.host, self.http_port), path)
    }

    /// `POST path` on the HTTP endpoint: the status code and the body.
    pub fn http_post(&self, path: &str) -> Result<(u16, String)> {
        http_request(&format!("{}:{}", self.host, self.http_port), "POST", path)
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        matches!(self.http_get("/readyz"), Ok((200, _)))
    }

    /// The broker's log output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        let Some(mut c) = self.child.take() else {
            return Ok(None);
        };
        // SAFETY-free: libc::kill is safe to call with a pid we own.
        signal(c.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                bail!("strom did not exit after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// `GET path` from `address` over HTTP/1.0: the status code and the body.
pub fn http_get(address: &str, path: &str) -> Result<(u16, String)> {
    http_request(address, "GET", path)
}

/// `METHOD path` (no body) to `address` over HTTP/1.0: the status code and
/// the body.
pub fn http_request(address: &str, method: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The value of the sample `series` (name and labels, as printed) in a
/// Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a child process this test started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// A cluster of combined broker-and-controller nodes on loopback ports,
/// node ids 1..=n, all voters of one metadata quorum.
pub struct Cluster {
    /// The nodes, node id `i + 1` at index `i`.
    pub nodes: Vec<BrokerProcess>,
    /// The cluster id.
    pub cluster_id: String,
}

impl Cluster {
    /// Starts `n` nodes on 127.0.0.1 and waits until every one answers.
    pub fn start(binary: impl AsRef<Path>, n: usize, overrides: &[&str]) -> Result<Self> {
        Self::start_on(binary, &vec!["127.0.0.1"; n], overrides)
    }

    /// Starts one node per host (each its own loopback address, so network
    /// rules can cut links between nodes) and waits until every one
    /// answers.
    pub fn start_on(binary: impl AsRef<Path>, hosts: &[&str], overrides: &[&str]) -> Result<Self> {
        let nodes: Vec<(&str, &str)> = hosts.iter().map(|h| (*h, "broker,controller")).collect();
        Self::start_nodes(binary, &nodes, overrides)
    }

    /// Starts one node per entry of `roles` (`process.roles` values:
    /// `controller`, `broker` or `broker,controller`) on 127.0.0.1, node ids
    /// from 1; the nodes with the controller role are the voters. Waits
    /// until every node answers (brokers ApiVersions, controllers a TCP
    /// connection).
    pub fn start_with_roles(
        binary: impl AsRef<Path>,
        roles: &[&str],
        overrides: &[&str],
    ) -> Result<Self> {
        let nodes: Vec<(&str, &str)> = roles.iter().map(|r| ("127.0.0.1", *r)).collect();
        Self::start_nodes(binary, &nodes, overrides)
    }

    /// Starts node `i + 1` on `nodes[i]` = (host, `process.roles`), the
    /// controllers being the voters, with fast elections and sessions, and
    /// waits until every node answers.
    pub fn start_nodes(
        binary: impl AsRef<Path>,
        nodes: &[(&str, &str)],
        overrides: &[&str],
    ) -> Result<Self> {
        Self::start_nodes_with_env(binary, nodes, overrides, |_| Vec::new())
    }

    /// [`Cluster::start_nodes`], each node's process getting the
    /// environment variables `env` gives for it (its data directory is
    /// known by then).
    pub fn start_nodes_with_env(
        binary: impl AsRef<Path>,
        nodes: &[(&str, &str)],
        overrides: &[&str],
        env: impl Fn(&BrokerProcess) -> Vec<(String, String)>,
    ) -> Result<Self> {
        let cluster_id = random_cluster_id();
        let client_ports: Vec<u16> = nodes.iter().map(|_| free_port()).collect();
        let controller_ports: Vec<u16> = nodes.iter().map(|_| free_port()).collect();
        let voters = nodes
            .iter()
            .enumerate()
            .filter(|(_, (_, role))| role.contains("controller"))
            .map(|(i, (host, _))| format!("{}@{host}:{}", i + 1, controller_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut processes = Vec::new();
        for (i, (host, role)) in nodes.iter().enumerate() {
            let (broker, controller) = (role.contains("broker"), role.contains("controller"));
            let mut listeners = Vec::new();
            if broker {
                listeners.push(format!("PLAINTEXT://{host}:{}", client_ports[i]));
            }
            if controller {
                listeners.push(format!("CONTROLLER://{host}:{}", controller_ports[i]));
            }
            let mut all: Vec<String> = vec![
                format!("node.id={}", i + 1),
                format!("process.roles={role}"),
                format!("cluster.id={cluster_id}"),
                format!("listeners={}", listeners.join(",")),
                format!("controller.quorum.voters={voters}"),
                "controller.quorum.election.timeout.ms=500".into(),
                "broker.heartbeat.interval.ms=200".into(),
                "broker.session.timeout.ms=2000".into(),
                "group.initial.rebalance.delay.ms=0".into(),
            ];
            if broker {
                all.push(format!(
                    "advertised.listeners=PLAINTEXT://{host}:{}",
                    client_ports[i]
                ));
            }
            all.extend(overrides.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let port = if broker {
                client_ports[i]
            } else {
                controller_ports[i]
            };
            let mut node =
                BrokerProcess::prepare(&binary, port, &refs, "info,strom_controller=debug")?;
            node.host = host.to_string();
            node.controller_only = !broker;
            node.env = env(&node);
            processes.push(node);
        }
        Self::launch_all(processes, cluster_id)
    }

    /// Launches every node, then waits until each answers.
    fn launch_all(mut nodes: Vec<BrokerProcess>, cluster_id: String) -> Result<Self> {
        for node in &mut nodes {
            node.launch()?;
        }
        for node in &mut nodes {
            node.wait_ready(Duration::from_secs(60))?;
        }
        Ok(Self { nodes, cluster_id })
    }

    /// Starts one node per properties file (node ids and listeners as the
    /// files say; each gets a fresh data directory), `client_ports[i]`
    /// being file `i`'s client port, and waits until all answer.
    pub fn start_from_files(
        binary: impl AsRef<Path>,
        files: &[PathBuf],
        client_ports: &[u16],
    ) -> Result<Self> {
        let mut nodes = Vec::new();
        for (file, port) in files.iter().zip(client_ports) {
            let mut node = BrokerProcess::prepare(&binary, *port, &[], "info")?;
            node.config_file = Some(file.clone());
            nodes.push(node);
        }
        Self::launch_all(nodes, String::new())
    }

    /// Every node's client address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with `node_id`.
    pub fn node(&mut self, node_id: i32) -> &mut BrokerProcess {
        &mut self.nodes[(node_id - 1) as usize]
    }
}

/// Network rules that cut links between loopback addresses, in a chain of
/// their own in iptables' raw table (removed when dropped). Needs root and
/// `iptables`; fails loudly without them.
pub struct Netfilter {
    chain: String,
}

fn iptables(args: &[&str]) -> Result<()> {
    // -w: wait for the xtables lock when tests change rules concurrently.
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .context("run iptables (tests/run installs it; it needs root)")?;
    if !out.status.success() {
        bail!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Netfilter {
    /// An empty rule chain hooked into the raw table's OUTPUT chain.
    pub fn new() -> Result<Self> {
        let chain = format!("STROM-{}-{}", std::process::id(), free_port());
        iptables(&["-t", "raw", "-N", &chain])?;
        iptables(&["-t", "raw", "-I", "OUTPUT", "-j", &chain])?;
        Ok(Self { chain })
    }

    /// Drops every packet between `a` and `b`, both ways.
    pub fn cut(&self, a: &str, b: &str) -> Result<()> {
        for (from, to) in [(a, b), (b, a)] {
            iptables(&[
                "-t",
                "raw",
                "-A",
                &self.chain,
                "-s",
                from,
                "-d",
                to,
                "-j",
                "DROP",
            ])?;
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<()> {
        iptables(&["-t", "raw", "-F", &self.chain])
    }
}

impl Drop for Netfilter {
    fn drop(&mut self) {
        let _ = iptables(&["-t", "raw", "-D", "OUTPUT", "-j", &self.chain]);
        let _ = iptables(&["-t", "raw", "-F", &self.chain]);
        let _ = iptables(&["-t", "raw", "-X", &self.chain]);
    }
}

/// Sends SIGSTOP (`true`) or SIGCONT (`false`) to a process.
pub fn pause_process(pid: u32, paused: bool) {
    signal(pid, if paused { libc::SIGSTOP } else { libc::SIGCONT });
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`: the peak,
/// which writing `5` to `/proc/<pid>/clear_refs` resets).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf only answers a query.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// A random cluster id (22 characters of URL-safe base64, as Kafka's).
pub fn random_cluster_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    strom_protocol::uuid_text::uuid_to_base64(&uuid::Uuid::from_bytes(bytes))
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An ApiVersions request as clients send it.
pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("strom-tests"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

/// A blocking connection speaking the Kafka protocol.
pub struct KafkaConnection {
    stream: TcpStream,
    next_correlation_id: i32,
    /// Client id sent in headers.
    pub client_id: String,
}

impl KafkaConnection {
    /// Connects with a 30 s read timeout.
    pub fn connect(addr: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next_correlation_id: 1,
            client_id: "strom-tests".into(),
        })
    }

    /// Sets the read timeout.
    pub fn set_read_timeout(&self, timeout: Duration) {
        let _ = self.stream.set_read_timeout(Some(timeout));
    }

    /// Encodes a request frame (size, header, body) without sending it.
    pub fn encode_request<M: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &M,
    ) -> Result<(i32, Vec<u8>)> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| anyhow!("{e}"))?;
        body.encode(&mut buf, version).map_err(|e| anyhow!("{e}"))?;
        let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&buf);
        Ok((correlation_id, frame))
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub fn recv_frame(&mut self) -> Result<Option<Bytes>> {
        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let size = i32::from_be_bytes(size);
        if !(0..=256 << 20).contains(&size) {
            bail!("response frame size {size}");
        }
        let mut body = vec![0u8; size as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Some(Bytes::from(body)))
    }

    /// Whether the broker closed the connection (reads EOF within 5 s).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }

    /// Decodes a response frame for `api` at `version`, checking the
    /// correlation id.
    pub fn decode_response<R: Decodable>(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        mut frame: Bytes,
    ) -> Result<R> {
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .map_err(|e| anyhow!("{e}"))?;
        if header.correlation_id != correlation_id {
            bail!(
                "correlation id {} where {correlation_id} was expected",
                header.correlation_id
            );
        }
        let r = R::decode(&mut frame, version)
            .map_err(|e| anyhow!("decode {api:?} v{version}: {e}"))?;
        if frame.has_remaining() {
            bail!(
                "{} bytes left after the {api:?} v{version} response",
                frame.remaining()
            );
        }
        Ok(r)
    }

    /// Sends a request and reads its response.
    pub fn send<Req>(&mut self, api: ApiKey, version: i16, request: &Req) -> Result<Req::Response>
    where
        Req: Request,
    {
        let (cid, frame) = self.encode_request(api, version, request)?;
        self.send_raw(&frame)?;
        let response = self
            .recv_frame()?
            .ok_or_else(|| anyhow!("connection closed by the broker"))?;
        Self::decode_response(api, version, cid, response)
    }
}
