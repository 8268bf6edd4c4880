//! Connection limits and slow clients against a real broker process:
//! `max.connections.per.ip` (and its overrides) close the extra connection
//! at accept, `max.connection.creation.rate` delays accepts,
//! `connections.max.idle.ms` is measured per connection (a trickle of bytes
//! does not keep a connection open; a request being handled, or a wait for
//! the request budget, is not idle), a client that stops reading holds only
//! its own connection, and the HTTP probes keep answering while other HTTP
//! clients hold connections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use strom_test_utils::{
    api_versions_request, free_port, metric_value, wait_until, BrokerProcess, KafkaConnection,
};

/// A whole ApiVersions v3 request frame.
fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("strom-tests")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ApiKey::ApiVersions.request_header_version(3))
        .unwrap();
    api_versions_request().encode(&mut buf, 3).unwrap();
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

/// A connection to `broker` from the local address `from` (any of
/// 127.0.0.0/8 on Linux).
fn connect_from(from: &str, broker: &BrokerProcess) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    let remote: SocketAddr = broker.bootstrap().parse().unwrap();
    socket.connect(&remote.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Whether one ApiVersions round trip works on `stream`.
fn answers(stream: &mut TcpStream) -> bool {
    if stream.write_all(&api_versions_frame(7)).is_err() {
        return false;
    }
    let mut size = [0u8; 4];
    if stream.read_exact(&mut size).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
    stream.read_exact(&mut body).is_ok() && body.get(..4) == Some(&7i32.to_be_bytes()[..])
}

/// Whether the broker closed `stream` (EOF or reset within `within`).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1];
    match stream.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn metric(b: &BrokerProcess, series: &str) -> f64 {
    let (_, text) = b.http_get("/metrics").unwrap();
    metric_value(&text, series).unwrap_or(0.0)
}

/// Waits until the broker counts no open client connection (the readiness
/// check's are closed), so a test counts its own.
fn wait_for_no_connections(b: &BrokerProcess) {
    assert!(wait_until(Duration::from_secs(10), || metric(
        b,
        r#"strom_connections{listener="PLAINTEXT"}"#
    ) == 0.0));
}

#[test]
fn per_ip_limit_closes_the_extra_connection_and_overrides_allow_more() {
    let b = broker(&[
        "max.connections.per.ip=3",
        "max.connections.per.ip.overrides=127.0.0.2:5",
    ]);
    wait_for_no_connections(&b);
    let mut three: Vec<TcpStream> = (0..3).map(|_| connect_from("127.0.0.1", &b)).collect();
    for c in &mut three {
        assert!(answers(c));
    }
    let started = Instant::now();
    let mut fourth = connect_from("127.0.0.1", &b);
    assert!(closed_within(&mut fourth, Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed at accept, not later: {:?}",
        started.elapsed()
    );
    for c in &mut three {
        assert!(answers(c), "the three keep working");
    }
    // The override: 127.0.0.2 may have five.
    let mut five: Vec<TcpStream> = (0..5).map(|_| connect_from("127.0.0.2", &b)).collect();
    for c in &mut five {
        assert!(answers(c));
    }
    let mut sixth = connect_from("127.0.0.2", &b);
    assert!(closed_within(&mut sixth, Duration::from_secs(5)));
    let refused =
        r#"strom_connections_refused_total{limit="max.connections.per.ip",listener="PLAINTEXT"}"#;
    assert_eq!(metric(&b, refused), 2.0);
    let log = b.log();
    assert!(
        log.lines().any(|l| l.contains("refusing connection")
            && l.contains("max.connections.per.ip")
            && l.contains("127.0.0.1:")),
        "{log}"
    );
    // Closing one gives its place back.
    drop(three.pop());
    assert!(wait_until(Duration::from_secs(10), || {
        let mut again = connect_from("127.0.0.1", &b);
        answers(&mut again)
    }));
}

#[test]
fn creation_rate_delays_accepts_but_not_on_the_inter_broker_listener() {
    let port = free_port();
    let internal_port = free_port();
    let listeners =
        format!("listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}");
    let mut b = BrokerProcess::prepare(
        BIN,
        port,
        &[
            &listeners,
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
            "max.connection.creation.rate=5",
        ],
        "info,strom_server=debug",
    )
    .unwrap();
    b.spawn().unwrap();
    // 20 connections at 5 a second, with at most one second's worth (5)
    // saved up: at least 3 s; none refused.
    let started = Instant::now();
    for _ in 0..20 {
        let mut c = KafkaConnection::connect(&b.bootstrap()).unwrap();
        c.send(ApiKey::ApiVersions, 3, &api_versions_request())
            .unwrap();
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2800) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        metric(
            &b,
            r#"strom_connections_throttled_total{listener="PLAINTEXT"}"#
        ) >= 14.0
    );
    // The inter-broker listener is exempt, as in Kafka.
    let started = Instant::now();
    for _ in 0..20 {
        let mut c = KafkaConnection::connect(&format!("127.0.0.1:{internal_port}")).unwrap();
        c.send(ApiKey::ApiVersions, 3, &api_versions_request())
            .unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        metric(
            &b,
            r#"strom_connections_throttled_total{listener="INTERNAL"}"#
        ),
        0.0
    );
}

const IDLE_MS: &str = "connections.max.idle.ms=2000";

#[test]
fn a_trickle_of_bytes_does_not_keep_a_connection_open() {
    let b = broker(&[IDLE_MS]);
    let mut c = TcpStream::connect(b.bootstrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A frame that claims 100 bytes, then one byte every 500 ms (the read
    // timeout paces the client), never completing it.
    let started = Instant::now();
    c.write_all(&100i32.to_be_bytes()).unwrap();
    let mut closed_after = None;
    while started.elapsed() < Duration::from_secs(10) {
        if c.write_all(&[0]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 16];
        match c.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(n) => panic!("{n} bytes from the broker"),
        }
    }
    let closed_after = closed_after.expect("the broker kept a trickling connection");
    assert!(
        closed_after >= Duration::from_millis(1500) && closed_after <= Duration::from_secs(4),
        "{closed_after:?}"
    );
    assert!(
        metric(
            &b,
            r#"strom_connections_idle_closed_total{listener="PLAINTEXT"}"#
        ) >= 1.0
    );
    let log = b.log();
    assert!(
        log.lines().any(|l| l.contains("connections.max.idle.ms")
            && l.contains("without a complete request")
            && l.contains("127.0.0.1:")),
        "{log}"
    );
}

#[test]
fn whole_requests_and_long_polls_keep_a_connection_open() {
    let b = broker(&[IDLE_MS]);
    let mut c = connect(&b);
    // A request every 500 ms for three idle periods.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        c.send(ApiKey::ApiVersions, 3, &api_versions_request())
            .expect("a connection sending whole requests is not idle");
        std::thread::sleep(Duration::from_millis(500));
    }
    // A long poll twice the idle time is not cut off mid-request.
    create_topic(&mut c, "idle-poll", 1, &[]);
    let request = fetch_request("idle-poll", 0, 0, 1 << 20)
        .with_max_wait_ms(4000)
        .with_min_bytes(1);
    let started = Instant::now();
    let r = c.send(ApiKey::Fetch, 12, &request).unwrap();
    assert_eq!(r.error_code, 0);
    assert!(started.elapsed() >= Duration::from_millis(3500));
    c.send(ApiKey::ApiVersions, 3, &api_versions_request())
        .expect("still open after the long poll");
    assert_eq!(
        metric(
            &b,
            r#"strom_connections_idle_closed_total{listener="PLAINTEXT"}"#
        ),
        0.0
    );
}

#[test]
fn a_client_that_stops_reading_holds_only_its_own_connection() {
    let b = broker(&[IDLE_MS, "socket.send.buffer.bytes=4096"]);
    // Pipelines thousands of requests and never reads an answer.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let remote: SocketAddr = b.bootstrap().parse().unwrap();
    socket.connect(&remote.into()).unwrap();
    let mut stuck: TcpStream = socket.into();
    let writer = std::thread::spawn(move || {
        let frames: Vec<u8> = (0..5000).flat_map(api_versions_frame).collect();
        // Fails once the broker gives up on this connection.
        let _ = stuck.write_all(&frames);
        stuck
    });
    // Every other connection keeps being answered meanwhile.
    let idle_closed = r#"strom_connections_idle_closed_total{listener="PLAINTEXT"}"#;
    let started = Instant::now();
    let mut other = connect(&b);
    other.set_read_timeout(Duration::from_secs(2));
    while started.elapsed() < Duration::from_secs(3) {
        other
            .send(ApiKey::ApiVersions, 3, &api_versions_request())
            .expect("another connection is answered while one client does not read");
    }
    // The stuck one is closed once its responses sat unread for the idle
    // time.
    assert!(wait_until(Duration::from_secs(10), || metric(
        &b,
        idle_closed
    ) >= 1.0));
    let log = b.log();
    assert!(
        log.contains("the client did not read its responses for connections.max.idle.ms"),
        "{log}"
    );
    drop(writer.join().unwrap());
    other
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
}

#[test]
fn http_probes_answer_while_idle_and_slow_clients_hold_connections() {
    let b = broker(&[]);
    let http = format!("127.0.0.1:{}", b.http_port);
    // More idle holders than the endpoint's cap (64), and a slowloris.
    let mut idle: Vec<TcpStream> = (0..70)
        .map(|_| TcpStream::connect(&http).unwrap())
        .collect();
    let mut slow = TcpStream::connect(&http).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let slow_writer = std::thread::spawn(move || {
        let started = Instant::now();
        for byte in b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
            if slow.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        started.elapsed()
    });
    for path in ["/livez", "/readyz", "/livez", "/readyz"] {
        let started = Instant::now();
        let (status, _) = b.http_get(path).unwrap();
        assert!(
            status == 200 || (path == "/readyz" && status == 503),
            "{path}: {status}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    // The slowloris is dropped at the header deadline (5 s), not kept.
    let slow_lasted = slow_writer.join().unwrap();
    assert!(slow_lasted < Duration::from_secs(10), "{slow_lasted:?}");
    // Idle holders are closed too: evicted to make room, or at the header
    // deadline.
    for c in &mut idle {
        assert!(closed_within(c, Duration::from_secs(10)));
    }
    let (_, text) = b.http_get("/metrics").unwrap();
    let closed = |reason: &str| {
        metric_value(
            &text,
            &format!(r#"strom_http_connections_closed_total{{reason="{reason}"}}"#),
        )
        .unwrap_or(0.0)
    };
    assert!(closed("evicted") >= 1.0, "{text}");
    assert!(closed("header_timeout") >= 1.0, "{text}");
    let log = b.log();
    assert!(log.contains("HTTP_HEADER_READ_TIMEOUT"), "{log}");
}

#[test]
fn a_wait_for_the_request_budget_is_not_idle_time() {
    let b = broker(&[IDLE_MS, "queued.max.requests=1"]);
    // A takes the whole budget (one request) with a frame it never
    // finishes, and is closed as idle after 2 s.
    let mut a = TcpStream::connect(b.bootstrap()).unwrap();
    a.write_all(&100i32.to_be_bytes()).unwrap();
    a.write_all(&[0]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || metric(
        &b,
        "strom_request_queue_requests"
    ) == 1.0));
    // B's size prefix arrives while A holds the budget: B waits for it.
    let mut bc = TcpStream::connect(b.bootstrap()).unwrap();
    bc.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let frame = api_versions_frame(9);
    bc.write_all(&frame[..4]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || metric(
        &b,
        "strom_request_queue_waits_total"
    ) >= 1.0));
    assert!(closed_within(&mut a, Duration::from_secs(5)));
    // By now B's prefix is more than the idle time old, but B spent that
    // time waiting for the budget, not idling: the rest of its request, a
    // second after it got the budget, is still answered.
    std::thread::sleep(Duration::from_secs(1));
    bc.write_all(&frame[4..]).unwrap();
    let mut size = [0u8; 4];
    bc.read_exact(&mut size)
        .expect("a connection that waited for the budget was closed as idle");
    let mut body = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 20) as usize];
    bc.read_exact(&mut body).unwrap();
    assert_eq!(&body[..4], &9i32.to_be_bytes());
}

#[test]
fn the_longest_idle_time_is_accepted_and_means_never() {
    let b = broker(&["connections.max.idle.ms=9223372036854775807"]);
    let mut c = connect(&b);
    c.send(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    // A partial frame arms the idle deadline, billions of years away: the
    // connection stays open and nothing overflows.
    c.send_raw(&100i32.to_be_bytes()).unwrap();
    c.set_read_timeout(Duration::from_millis(500));
    assert!(c.recv_frame().is_err(), "no answer, no close");
    let mut other = connect(&b);
    other
        .send(ApiKey::ApiVersions, 3, &api_versions_request())
        .unwrap();
    assert_eq!(
        metric(&b, r#"strom_connections{listener="PLAINTEXT"}"#),
        2.0,
        "{}",
        b.log()
    );
}
