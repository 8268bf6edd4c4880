"""Fixtures for the client suites: real `strom` processes on free loopback
ports, each with its own data directory.

STROM_BIN must point at the broker binary (tests/run sets it); without it
the suites fail rather than skip.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

STROM_BIN = os.environ.get("STROM_BIN")


def free_port(host="127.0.0.1"):
    """A free port below the kernel's ephemeral range (32768 and up), so an
    outgoing connection never takes a port a broker is about to use."""
    import random
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_until(predicate, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _request(host, port, api_key, version, body, timeout=1.0):
    """Sends one request (header v1, null client id, correlation id 7) and
    returns the response body after the correlation id; None when the
    broker does not answer in `timeout` seconds or answers another id."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            frame = struct.pack(">hhih", api_key, version, 7, -1) + body
            s.sendall(struct.pack(">i", len(frame)) + frame)
            data = b""
            size = None
            while size is None or len(data) < size + 4:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
                if size is None and len(data) >= 4:
                    size = struct.unpack(">i", data[:4])[0]
            if struct.unpack(">i", data[4:8])[0] != 7:
                return None
            return data[8:4 + size]
    except OSError:
        return None


def _answers_api_versions(host, port):
    """True when the broker answers an ApiVersions v0 request."""
    return _request(host, port, 18, 0, b"") is not None


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take(">h")
        value = self.data[self.pos:self.pos + max(n, 0)].decode()
        self.pos += max(n, 0)
        return value if n >= 0 else None

    def int32s(self):
        return [self.take(">i") for _ in range(self.take(">i"))]


def partition_view(broker, topic, partition=0):
    """(leader, sorted ISR) of one partition as `broker` itself sees it,
    from a Metadata v1 request to it alone (clients may ask any broker;
    this asks the one named); (None, None) when it does not answer."""
    name = topic.encode()
    body = _request(broker.host, broker.port, 3, 1,
                    struct.pack(">ih", 1, len(name)) + name)
    if body is None:
        return None, None
    r = _Reader(body)
    for _ in range(r.take(">i")):  # brokers: id, host, port, rack
        r.take(">i"), r.string(), r.take(">i"), r.string()
    r.take(">i")  # controller id
    for _ in range(r.take(">i")):
        _error, topic_name, _internal = r.take(">h"), r.string(), r.take(">?")
        for _ in range(r.take(">i")):
            _error, index, leader = r.take(">hii")
            _replicas, isr = r.int32s(), r.int32s()
            if topic_name == topic and index == partition:
                return leader, sorted(isr)
    return None, None

class Broker:
    """One strom process, listening on `host` (its own loopback address
    when network rules must tell nodes apart)."""

    def __init__(self, overrides=(), port=None, controller_only=False, host="127.0.0.1"):
        if not STROM_BIN or not os.access(STROM_BIN, os.X_OK):
            raise RuntimeError("STROM_BIN must name the strom binary (run the suites through tests/run)")
        self.tmp = tempfile.mkdtemp(prefix="strom-test-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.host = host
        self.port = port or free_port(host)
        # A controller-only node's port is its controller listener, which
        # does not speak Kafka: it is ready once it accepts connections.
        self.controller_only = controller_only
        self.overrides = list(overrides)
        self.proc = None
        self.log_path = os.path.join(self.tmp, "broker.log")
        self.start()

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def start(self):
        args = [STROM_BIN, "serve",
                "--override", f"listeners=PLAINTEXT://{self.host}:{self.port}",
                "--override", f"log.dirs={self.data_dir}",
                "--override", "http.listener="]
        for o in self.overrides:
            args += ["--override", o]
        log = open(self.log_path, "ab")
        env = dict(os.environ, STROM_LOG=os.environ.get("STROM_TEST_LOG", "info,strom_replication=debug"))
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"strom exited with {self.proc.returncode}:\n{self.log()}")
            if self.controller_only:
                try:
                    socket.create_connection((self.host, self.port), timeout=1).close()
                    return True
                except OSError:
                    return False
            return _answers_api_versions(self.host, self.port)

        wait_until(ready, timeout=60, what="strom to answer")

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        """SIGKILL, as a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def terminate(self):
        """SIGTERM; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=60)
        return self.proc.returncode if self.proc else None

    def pause(self):
        """SIGSTOP: the process stops answering but keeps its sockets."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def restart(self, clean=True):
        if clean:
            assert self.terminate() == 0, self.log()
        else:
            self.kill()
        self.start()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.resume()
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Cluster:
    """`controllers` controller-only nodes (ids 1..) and `brokers`
    broker-only nodes (the ids after them) on loopback ports: all on
    127.0.0.1, or with `first_host` node i on 127.0.0.{first_host + i - 1}
    so that a `Netfilter` can cut links between them (clients connect from
    127.0.0.1 and stay connected)."""

    def __init__(self, brokers=3, controllers=1, overrides=(), first_host=None):
        def host(node_id):
            return "127.0.0.1" if first_host is None else f"127.0.0.{first_host + node_id - 1}"

        controller_ports = [free_port(host(i + 1)) for i in range(controllers)]
        voters = ",".join(f"{i + 1}@{host(i + 1)}:{p}" for i, p in enumerate(controller_ports))
        common = [f"controller.quorum.voters={voters}",
                  "cluster.id=c2FmZXR5LXJ1bi1jbHVzdA",
                  "controller.quorum.election.timeout.ms=500",
                  "broker.heartbeat.interval.ms=200",
                  "broker.session.timeout.ms=2000",
                  "group.initial.rebalance.delay.ms=0",
                  *overrides]
        self.controllers = {}
        for i, port in enumerate(controller_ports):
            self.controllers[i + 1] = Broker(
                overrides=[f"node.id={i + 1}", "process.roles=controller",
                           f"listeners=CONTROLLER://{host(i + 1)}:{port}", *common],
                port=port, controller_only=True, host=host(i + 1))
        self.brokers = {}
        for node_id in range(controllers + 1, controllers + 1 + brokers):
            port = free_port(host(node_id))
            self.brokers[node_id] = Broker(
                overrides=[f"node.id={node_id}", "process.roles=broker",
                           f"listeners=PLAINTEXT://{host(node_id)}:{port}",
                           f"advertised.listeners=PLAINTEXT://{host(node_id)}:{port}", *common],
                port=port, host=host(node_id))

    @property
    def bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers.values())

    def print_log_tails(self, lines=60):
        """The end of every node's log, for a failing test's output."""
        for node_id, n in sorted({**self.controllers, **self.brokers}.items()):
            tail = "\n".join(n.log().splitlines()[-lines:])
            print(f"--- node {node_id} ({n.host}) ---\n{tail}")

    def close(self):
        for b in self.brokers.values():
            b.close()
        for c in self.controllers.values():
            c.close()


class Netfilter:
    """Rules that cut links between loopback addresses, in an iptables
    chain of their own in the raw table (removed by `close`). Needs root and
    iptables, which tests/run installs; fails loudly without them."""

    def __init__(self):
        self.chain = f"STROM-PY-{os.getpid()}-{free_port()}"
        self._iptables("-N", self.chain)
        self._iptables("-I", "OUTPUT", "-j", self.chain)

    @staticmethod
    def _iptables(*args):
        # -w: wait for the xtables lock when rules change concurrently.
        subprocess.run(["iptables", "-w", "-t", "raw", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def cut(self, a, b):
        """Drops every packet between hosts `a` and `b`, both ways."""
        for src, dst in ((a, b), (b, a)):
            self._iptables("-A", self.chain, "-s", src, "-d", dst, "-j", "DROP")

    def heal(self):
        self._iptables("-F", self.chain)

    def close(self):
        self._iptables("-D", "OUTPUT", "-j", self.chain)
        self._iptables("-F", self.chain)
        self._iptables("-X", self.chain)


@pytest.fixture(scope="module")
def broker():
    """A broker shared by the tests of one module."""
    b = Broker()
    yield b
    b.close()


@pytest.fixture
def fresh_broker(request):
    """A broker of this test alone; parametrize with overrides via
    `@pytest.mark.broker_overrides(...)`."""
    marker = request.node.get_closest_marker("broker_overrides")
    b = Broker(overrides=marker.args if marker else ())
    yield b
    b.close()


def consume_subscribed(conf, topic, count, timeout=60.0):
    """Subscribes a new confluent-kafka consumer group to `topic` (so the
    group coordinator is used on the listener `conf` names) and reads up to
    `count` messages from the beginning: (offset, value) pairs."""
    from confluent_kafka import Consumer
    c = Consumer({**conf, "group.id": unique("g"), "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                got.append((m.offset(), m.value()))
        return got
    finally:
        c.close()


def kafka_python_round_trip(common, topic, count):
    """Produces m0 .. m<count-1> to `topic` with kafka-python (waiting for
    each acknowledgement) and reads them back: the values read."""
    from kafka import KafkaConsumer, KafkaProducer
    p = KafkaProducer(**common)
    for i in range(count):
        p.send(topic, f"m{i}".encode()).get(timeout=30)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **common)
    try:
        return [m.value for m in c]
    finally:
        c.close()


def unique(prefix):
    """A topic name not used before in this run."""
    unique.counter += 1
    return f"{prefix}-{os.getpid()}-{unique.counter}"


unique.counter = 0


def stored_codecs(data_dir, topic, partition=0):
    """Compression codec of every batch stored for a partition, read from the
    segment files (attribute bits 0-2)."""
    d = os.path.join(data_dir, f"{topic}-{partition}")
    codecs = []
    for name in sorted(os.listdir(d)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 23 <= len(data):
            length = struct.unpack(">i", data[pos + 8:pos + 12])[0]
            attrs = struct.unpack(">h", data[pos + 21:pos + 23])[0]
            codecs.append(attrs & 7)
            pos += 12 + length
    return codecs
