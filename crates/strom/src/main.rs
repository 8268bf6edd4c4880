//! The `strom` binary: parses the command line, loads the configuration,
//! sets up logging and runs a broker until SIGTERM or Ctrl-C. All the work
//! happens in the library crates; this file only wires them, and holds
//! what is the process's own concern (its descriptor limit).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use strom_config::{BrokerConfig, ConfigInputs};
use strom_server::provisioning::{read_topics, TopicSpec};
use strom_server::Broker;

/// Strom, a Kafka-compatible message broker.
#[derive(Debug, Parser)]
#[command(name = "strom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Prepare the log directories of a node of a cluster, like
    /// `kafka-storage format`: writes meta.properties with the cluster id.
    Format(FormatArgs),
    /// Print a new random cluster id, like `kafka-storage random-uuid`.
    RandomUuid,
    /// Ask a running broker, over its HTTP endpoint, to move its partition
    /// leadership away (controlled shutdown) before it is stopped; exits 0
    /// once the controller confirmed. For Kubernetes' preStop hook.
    ControlledShutdown(ControlledShutdownArgs),
}

#[derive(Debug, Args, Clone)]
struct ControlledShutdownArgs {
    /// The broker's HTTP endpoint (`http.listener`).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "STROM_HTTP_ADDRESS",
        default_value = "127.0.0.1:9644"
    )]
    http: String,
    /// Give up after this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout_seconds: u64,
}

#[derive(Debug, Args, Clone)]
struct FormatArgs {
    /// The cluster id (22 characters of URL-safe base64).
    #[arg(long, short = 't')]
    cluster_id: String,
    /// Leave directories already formatted for this node and cluster alone
    /// instead of failing.
    #[arg(long, short = 'g')]
    ignore_formatted: bool,
    #[command(flatten)]
    config: ServeArgs,
}

#[derive(Debug, Args, Clone, Default)]
struct ServeArgs {
    /// A server.properties file with Kafka's configuration keys.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a configuration key, overriding the file and STROM_CFG_* variables.
    #[arg(long = "override", short = 'o', value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG works too. The Raft
    /// library's own events are off unless the filter names `openraft`
    /// (Strom logs quorum changes itself).
    #[arg(long, value_name = "FILTER", env = "STROM_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(long, value_name = "FORMAT", env = "STROM_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Topics to create (or bring up to date) at start-up: a JSON list of
    /// {"name", "partitions", "replicationFactor", "config"}.
    #[arg(long, value_name = "FILE", env = "STROM_PROVISION_TOPICS")]
    provision_topics: Option<PathBuf>,
}

fn init_logging(args: &ServeArgs) {
    let mut filter = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    if !filter.contains("openraft") {
        filter.push_str(",openraft=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Raises the soft limit on open files to the hard limit: every segment
/// keeps three files open, as in Kafka, whose documentation asks for
/// 100,000 or more.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn load_config(args: &ServeArgs) -> anyhow::Result<strom_config::LoadedConfig> {
    let environment: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let mut inputs = ConfigInputs {
        env: ConfigInputs::from_env_vars(environment.clone()),
        overrides: ConfigInputs::parse_overrides(&args.overrides)?,
        environment,
        ..Default::default()
    };
    if let Some(path) = &args.config {
        inputs.file = ConfigInputs::read_file(path)?;
    }
    Ok(BrokerConfig::load(&inputs)?)
}

async fn serve(config: BrokerConfig, topics: Vec<TopicSpec>) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // A signal while starting (recovering logs, waiting for the quorum)
    // stops at once; the next start recovers as after a crash.
    let mut broker = tokio::select! {
        started = Broker::start(config) => started?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("received SIGINT while starting");
            return Ok(());
        }
        _ = terminate.recv() => {
            tracing::info!("received SIGTERM while starting");
            return Ok(());
        }
    };
    broker.provision_topics(topics);
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = terminate.recv() => tracing::info!("received SIGTERM"),
    }
    broker.shutdown().await?;
    Ok(())
}

/// `strom controlled-shutdown`: `POST /controlled-shutdown` over HTTP/1.0.
fn controlled_shutdown(args: &ControlledShutdownArgs) -> ExitCode {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(args.timeout_seconds.max(1));
    let attempt = || -> std::io::Result<String> {
        let mut stream = connect_from_the_same_address(&args.http, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "POST {} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            strom_server::http::CONTROLLED_SHUTDOWN_PATH,
            args.http
        )?;
        let mut response = String::new();
        stream
            .take(CONTROLLED_SHUTDOWN_RESPONSE_MAX_BYTES)
            .read_to_string(&mut response)?;
        Ok(response)
    };
    match attempt() {
        Ok(response) => {
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            let ok = head.split_whitespace().nth(1) == Some("200");
            if ok {
                print!("{body}");
                ExitCode::SUCCESS
            } else {
                eprint!("strom: controlled shutdown refused: {body}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("strom: cannot reach the broker at {}: {e}", args.http);
            ExitCode::FAILURE
        }
    }
}

/// Connects to `address` from that same IP address (the broker accepts a
/// controlled shutdown only from its own host, and a connection to a pod IP
/// or to 127.0.0.2 would otherwise leave from another local address).
fn connect_from_the_same_address(
    address: &str,
    timeout: std::time::Duration,
) -> std::io::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let target = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // Binding fails when the address is not this host's: the broker then
    // answers 403.
    let _ = socket.bind(&std::net::SocketAddr::new(target.ip(), 0).into());
    socket.connect_timeout(&target.into(), timeout)?;
    Ok(socket.into())
}

/// How long the process waits, once served, for tasks still running.
const RUNTIME_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The most of an HTTP answer `strom controlled-shutdown` reads.
const CONTROLLED_SHUTDOWN_RESPONSE_MAX_BYTES: u64 = 64 * 1024;

/// `strom format`.
fn format(args: &FormatArgs) -> ExitCode {
    let mut serve = args.config.clone();
    serve
        .overrides
        .push(format!("cluster.id={}", args.cluster_id));
    let loaded = match load_config(&serve) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("strom: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let c = &loaded.config;
    match strom_storage::log_manager::format_log_dirs(
        &c.log_dirs,
        c.node_id,
        &args.cluster_id,
        args.ignore_formatted,
    ) {
        Ok(done) => {
            for d in done {
                match d {
                    strom_storage::log_manager::Formatted::Formatted(p) => {
                        println!(
                            "Formatting {} with cluster id {}",
                            p.display(),
                            args.cluster_id
                        )
                    }
                    strom_storage::log_manager::Formatted::AlreadyFormatted(p) => {
                        println!("{} is already formatted", p.display())
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strom: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Format(args)) => return format(&args),
        Some(Command::ControlledShutdown(args)) => return controlled_shutdown(&args),
        Some(Command::RandomUuid) => {
            println!(
                "{}",
                strom_protocol::uuid_text::uuid_to_base64(&uuid::Uuid::new_v4())
            );
            return ExitCode::SUCCESS;
        }
        None => cli.serve,
    };
    init_logging(&args);
    // A panic is a bug; make sure it reaches the log, with where it happened.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "bug: a task panicked");
        default_hook(info);
    }));
    let loaded = match load_config(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("strom: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let topics = match args
        .provision_topics
        .as_deref()
        .map(read_topics)
        .transpose()
    {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => {
            eprintln!("strom: --provision-topics: {e}");
            return ExitCode::from(2);
        }
    };
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strom: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(loaded.config, topics));
    // Work still running on blocking threads (log recovery interrupted by
    // a signal while starting) is not waited for: stopping there is safe,
    // the next start recovers as after a crash.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("strom: {e:#}");
            ExitCode::FAILURE
        }
    }
}
