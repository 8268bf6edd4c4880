"""SASL/PLAIN on SASL_PLAINTEXT and SASL_SSL listeners with real clients:
confluent-kafka and kcat (librdkafka), kafka-python. Users come from the
listener's PlainLoginModule JAAS entry, as on Kafka brokers; a wrong
password fails with Kafka's message, a request before authentication
closes the connection, and a client configured for SASL against a
PLAINTEXT listener fails instead of hanging."""

import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from conftest import Broker, consume_subscribed, free_port, kafka_python_round_trip, unique, wait_until
from test_tls import Pki

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret" '
        'user_admin="admin-secret" user_alice="alice-secret";')


def sasl_broker(protocol="SASL_PLAINTEXT", *overrides):
    """A broker with a PLAINTEXT listener (its `port`) and a SASL one named
    `protocol` (its `sasl_port`) offering PLAIN."""
    port, sasl_port = free_port(), free_port()
    name = protocol.lower()
    b = Broker(port=port, overrides=[
        f"listeners=PLAINTEXT://127.0.0.1:{port},{protocol}://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.{name}.plain.sasl.jaas.config={JAAS}", *overrides])
    b.sasl_port = sasl_port
    return b


@pytest.fixture(scope="module")
def plain_broker():
    b = sasl_broker()
    yield b
    b.close()


def client_config(b, user="alice", password="alice-secret"):
    return {"bootstrap.servers": f"127.0.0.1:{b.sasl_port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": password}


def test_confluent_kafka_authenticates_with_plain_and_produces_and_consumes(plain_broker):
    conf = client_config(plain_broker)
    topic = unique("sasl")
    p = Producer(conf)
    for i in range(50):
        p.produce(topic, value=f"v{i}".encode())
    assert p.flush(30) == 0
    got = [value for _, value in consume_subscribed(conf, topic, 50)]
    assert got == [f"v{i}".encode() for i in range(50)]
    wait_until(lambda: "client authenticated" in plain_broker.log() and "User:alice" in plain_broker.log(),
               timeout=10, what="the authentication logged")


def test_a_wrong_password_fails_with_kafkas_message_and_is_logged(plain_broker):
    admin = AdminClient({**client_config(plain_broker, password="wrong"), "socket.timeout.ms": 5000})
    started = time.monotonic()
    with pytest.raises(KafkaException) as e:
        admin.list_topics(timeout=10)
    assert time.monotonic() - started < 15, e.value
    wait_until(lambda: "SASL authentication failed" in plain_broker.log(), timeout=10,
               what="the failure logged")
    assert "wrong password for user" in plain_broker.log()


def test_kafka_python_authenticates_with_plain(plain_broker):
    common = {"bootstrap_servers": f"127.0.0.1:{plain_broker.sasl_port}",
              "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
              "sasl_plain_username": "admin", "sasl_plain_password": "admin-secret"}
    got = kafka_python_round_trip(common, unique("kp-sasl"), 10)
    assert got == [f"m{i}".encode() for i in range(10)]


def _frame(api_key, version, body, correlation_id=1):
    header = struct.pack(">hhih", api_key, version, correlation_id, -1)
    return struct.pack(">i", len(header) + len(body)) + header + body


def _closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        data = s.recv(4096)
        return data == b""
    except ConnectionResetError:
        return True


def test_a_request_before_authentication_closes_the_connection(plain_broker):
    # Metadata v1 (all topics: an empty array is "none"; null is "all").
    with socket.create_connection(("127.0.0.1", plain_broker.sasl_port), timeout=5) as s:
        s.sendall(_frame(3, 1, struct.pack(">i", -1)))
        assert _closed(s)
    wait_until(lambda: "a request before SASL authentication" in plain_broker.log(), timeout=10,
               what="the log line")


def test_sasl_handshake_v0_with_a_raw_token_authenticates(plain_broker):
    mechanism = b"PLAIN"
    with socket.create_connection(("127.0.0.1", plain_broker.sasl_port), timeout=5) as s:
        s.sendall(_frame(17, 0, struct.pack(">h", len(mechanism)) + mechanism))
        size = struct.unpack(">i", s.recv(4))[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        assert struct.unpack(">h", body[4:6])[0] == 0, body
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert s.recv(4) == b"\0\0\0\0"
        # Authenticated: ApiVersions v0 and Metadata v1 are served.
        s.sendall(_frame(3, 1, struct.pack(">i", -1), correlation_id=9))
        size = struct.unpack(">i", s.recv(4))[0]
        assert size > 4
        assert struct.unpack(">i", s.recv(4))[0] == 9


def test_a_sasl_client_on_a_plaintext_listener_fails_instead_of_hanging(plain_broker):
    conf = {**client_config(plain_broker), "bootstrap.servers": plain_broker.bootstrap}
    admin = AdminClient(conf)
    started = time.monotonic()
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=10)
    assert time.monotonic() - started < 15


def test_kcat_over_sasl_ssl():
    pki = Pki()
    pki.ca("ca")
    pki.cert("ca", "broker", "broker-1")
    b = sasl_broker("SASL_SSL", f"ssl.keystore.location={pki.path('broker-store.pem')}")
    try:
        base = ["kcat", "-b", f"127.0.0.1:{b.sasl_port}", "-X", "security.protocol=SASL_SSL",
                "-X", f"ssl.ca.location={pki.path('ca.pem')}", "-X", "sasl.mechanisms=PLAIN",
                "-X", "sasl.username=alice"]
        topic = unique("kcat-sasl")
        r = subprocess.run(base + ["-X", "sasl.password=alice-secret", "-P", "-t", topic],
                           input="one\ntwo\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(base + ["-X", "sasl.password=alice-secret", "-C", "-t", topic,
                                   "-o", "beginning", "-e"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["one", "two"]
        r = subprocess.run(base + ["-X", "sasl.password=nope", "-L", "-m", "5"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert "Invalid username or password" in r.stderr, r.stderr
    finally:
        b.close()


def _recv_frame(s):
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    size = struct.unpack(">i", head)[0]
    body = b""
    while len(body) < size:
        chunk = s.recv(size - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def test_sessions_expire_and_clients_re_authenticate():
    b = sasl_broker("SASL_PLAINTEXT", "connections.max.reauth.ms=2000")
    try:
        # librdkafka re-authenticates on the same connection before the
        # session ends: eight seconds of producing see several logins.
        p = Producer(client_config(b))
        topic = unique("reauth")
        deadline = time.monotonic() + 8
        sent = 0
        while time.monotonic() < deadline:
            p.produce(topic, value=str(sent).encode())
            sent += 1
            p.poll(0.05)
        assert p.flush(30) == 0
        log = b.log()
        assert log.count("reauthentication=true") >= 2, log[-3000:]
        assert "session expired" not in log
        # A client that logs in with SaslAuthenticate v1 and never
        # re-authenticates is closed when it next asks for anything else.
        mechanism = b"PLAIN"
        with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
            s.sendall(_frame(17, 1, struct.pack(">h", len(mechanism)) + mechanism))
            assert struct.unpack(">h", _recv_frame(s)[4:6])[0] == 0
            token = b"\0alice\0alice-secret"
            s.sendall(_frame(36, 1, struct.pack(">i", len(token)) + token, correlation_id=2))
            answer = _recv_frame(s)
            error, message_len = struct.unpack(">hh", answer[4:8])
            assert error == 0
            rest = answer[8 + max(message_len, 0):]
            auth_len = struct.unpack(">i", rest[:4])[0]
            lifetime = struct.unpack(">q", rest[4 + max(auth_len, 0):12 + max(auth_len, 0)])[0]
            assert lifetime == 2000
            logged_in = time.monotonic()
            # Served until the session ends, then closed.
            for cid in range(3, 1000):
                s.sendall(_frame(3, 1, struct.pack(">i", -1), correlation_id=cid))
                answer = _recv_frame(s)
                if answer is None:
                    break
                assert struct.unpack(">i", answer[:4])[0] == cid
                assert time.monotonic() - logged_in < 5, "still served long after the session ended"
                time.sleep(0.2)
            assert time.monotonic() - logged_in >= 1.9, "closed before the session ended"
        wait_until(lambda: "session expired" in b.log(), timeout=10, what="the expiry logged")
    finally:
        b.close()
