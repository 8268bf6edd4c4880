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


def free_port():
    """A free port below the kernel's ephemeral range (32768 and up), so an
    outgoing connection never takes a port a broker is about to use."""
    import random
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
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


def _answers_api_versions(port):
    """True when the broker answers an ApiVersions v0 request."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            body = struct.pack(">hhih", 18, 0, 7, -1)  # api key, version, correlation id, null client id
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", s.recv(4))[0]
            data = b""
            while len(data) < size:
                chunk = s.recv(size - len(data))
                if not chunk:
                    return False
                data += chunk
            return struct.unpack(">i", data[:4])[0] == 7
    except OSError:
        return False


class Broker:
    """One strom process."""

    def __init__(self, overrides=(), port=None, controller_only=False):
        if not STROM_BIN or not os.access(STROM_BIN, os.X_OK):
            raise RuntimeError("STROM_BIN must name the strom binary (run the suites through tests/run)")
        self.tmp = tempfile.mkdtemp(prefix="strom-test-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.port = port or free_port()
        # A controller-only node's port is its controller listener, which
        # does not speak Kafka: it is ready once it accepts connections.
        self.controller_only = controller_only
        self.overrides = list(overrides)
        self.proc = None
        self.log_path = os.path.join(self.tmp, "broker.log")
        self.start()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        args = [STROM_BIN, "serve",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
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
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return True
                except OSError:
                    return False
            return _answers_api_versions(self.port)

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

    def restart(self, clean=True):
        if clean:
            assert self.terminate() == 0, self.log()
        else:
            self.kill()
        self.start()

    def close(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Cluster:
    """`controllers` controller-only nodes (ids 1..) and `brokers`
    broker-only nodes (the ids after them) on loopback ports."""

    def __init__(self, brokers=3, controllers=1, overrides=()):
        controller_ports = [free_port() for _ in range(controllers)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(controller_ports))
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
                           f"listeners=CONTROLLER://127.0.0.1:{port}", *common],
                port=port, controller_only=True)
        self.brokers = {}
        for node_id in range(controllers + 1, controllers + 1 + brokers):
            port = free_port()
            self.brokers[node_id] = Broker(
                overrides=[f"node.id={node_id}", "process.roles=broker",
                           f"listeners=PLAINTEXT://127.0.0.1:{port}",
                           f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}", *common],
                port=port)

    @property
    def bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers.values())

    def close(self):
        for b in self.brokers.values():
            b.close()
        for c in self.controllers.values():
            c.close()


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
