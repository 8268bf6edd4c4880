"""TLS listeners (security protocol SSL) with real clients: confluent-kafka
and kcat (librdkafka), kafka-python. Certificates are made with openssl at
test time: PEM and PKCS12 key stores, client certificates required, a
PLAINTEXT client on the SSL port and an SSL client on the PLAINTEXT port
refused fast, a certificate rotated on disk served to new connections
without a restart."""

import os
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Producer

from conftest import Broker, consume_subscribed, free_port, kafka_python_round_trip, unique, wait_until


def openssl(cwd, *args):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"openssl {args}: {r.stderr}"


class Pki:
    """A directory of certificates: CAs and the certificates they sign."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="strom-tls-")

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self, name):
        openssl(self.dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={name}")
        return self.path(f"{name}.pem")

    def cert(self, ca, name, cn, server=True):
        """`name`.pem (certificate), `name`.key (PKCS#8 key), and
        `name`-store.pem (both, a PEM key store); signed by `ca`."""
        openssl(self.dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        ext = self.path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n" if server else "extendedKeyUsage=clientAuth\n")
        openssl(self.dir, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext)
        with open(self.path(f"{name}-store.pem"), "w") as out:
            for part in (f"{name}.pem", f"{name}.key"):
                with open(self.path(part)) as f:
                    out.write(f.read())
        return self.path(f"{name}-store.pem")

    def pkcs12(self, name, password):
        openssl(self.dir, "pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key",
                "-out", f"{name}.p12", "-passout", f"pass:{password}", "-name", name)
        return self.path(f"{name}.p12")


def ssl_broker(*overrides):
    """A broker with a PLAINTEXT listener (its `port`) and an SSL one (its
    `ssl_port`)."""
    port, ssl_port = free_port(), free_port()
    b = Broker(port=port, overrides=[
        f"listeners=PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}", *overrides])
    b.ssl_port = ssl_port
    return b


def peer_common_name(port, ca):
    """The CN of the certificate the broker presents on `port`."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


@pytest.fixture(scope="module")
def pki():
    p = Pki()
    p.ca("ca")
    p.cert("ca", "broker", "broker-1")
    p.ca("clients-ca")
    p.cert("clients-ca", "app", "app", server=False)
    return p


def test_confluent_kafka_produces_and_consumes_over_tls_with_a_pem_key_store(pki):
    b = ssl_broker(f"ssl.keystore.location={pki.path('broker-store.pem')}",
                   "ssl.keystore.type=PEM")
    try:
        tls = {"bootstrap.servers": f"127.0.0.1:{b.ssl_port}", "security.protocol": "SSL",
               "ssl.ca.location": pki.path("ca.pem")}
        topic = unique("tls")
        p = Producer(tls)
        for i in range(200):
            p.produce(topic, key=f"k{i}".encode(), value=f"secret {i}".encode())
        assert p.flush(30) == 0
        got = consume_subscribed(tls, topic, 200)
        assert got == [(i, f"secret {i}".encode()) for i in range(200)]
        # Metadata on the SSL listener advertises the SSL listener.
        md = Producer(tls).list_topics(timeout=10)
        assert [f"{br.host}:{br.port}" for br in md.brokers.values()] == [f"127.0.0.1:{b.ssl_port}"]
    finally:
        b.close()


def test_kcat_with_required_client_certificates_and_a_pkcs12_key_store(pki):
    store = pki.pkcs12("broker", "changeit")
    b = ssl_broker(f"ssl.keystore.location={store}", "ssl.keystore.type=PKCS12",
                   "ssl.keystore.password=changeit", "ssl.client.auth=required",
                   f"ssl.truststore.location={pki.path('clients-ca.pem')}", "ssl.truststore.type=PEM",
                   "ssl.principal.mapping.rules=RULE:^CN=([a-z]+)$/$1-service/U,DEFAULT")
    try:
        base = ["kcat", "-b", f"127.0.0.1:{b.ssl_port}", "-X", "security.protocol=SSL",
                "-X", f"ssl.ca.location={pki.path('ca.pem')}"]
        with_cert = base + ["-X", f"ssl.certificate.location={pki.path('app.pem')}",
                            "-X", f"ssl.key.location={pki.path('app.key')}"]
        topic = unique("kcat-tls")
        r = subprocess.run(with_cert + ["-P", "-t", topic, "-K:"], input="a:1\nb:2\nc:3\n",
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(with_cert + ["-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s\n"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["a=1", "b=2", "c=3"]
        # The certificate's subject, mapped by the rule, is the principal.
        assert "principal=User:APP-SERVICE" in b.log(), b.log()[-2000:]
        # Without a certificate the handshake fails, and the broker says why.
        r = subprocess.run(base + ["-L", "-m", "5"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, r.stdout
        wait_until(lambda: "TLS handshake failed" in b.log(), timeout=10, what="the handshake failure logged")
    finally:
        b.close()


def test_kafka_python_over_tls(pki):
    b = ssl_broker(f"ssl.keystore.location={pki.path('broker-store.pem')}")
    try:
        common = {"bootstrap_servers": f"127.0.0.1:{b.ssl_port}", "security_protocol": "SSL",
                  "ssl_cafile": pki.path("ca.pem")}
        got = kafka_python_round_trip(common, unique("kp-tls"), 20)
        assert got == [f"m{i}".encode() for i in range(20)]
    finally:
        b.close()


def test_the_wrong_protocol_on_either_listener_fails_fast_and_is_logged(pki):
    b = ssl_broker(f"ssl.keystore.location={pki.path('broker-store.pem')}")
    try:
        # A PLAINTEXT request on the SSL port: the connection is closed.
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", b.ssl_port), timeout=10) as s:
            s.sendall(b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\xff\xff")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert time.monotonic() - started < 5
        # At most a TLS alert (content type 21), never a Kafka response.
        assert answer == b"" or answer[0] == 21, answer
        wait_until(lambda: "TLS handshake failed" in b.log(), timeout=10, what="the log line")
        # A TLS client on the PLAINTEXT port: refused at once, and logged.
        ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", b.port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        assert time.monotonic() - started < 5
        wait_until(lambda: "a TLS handshake on a PLAINTEXT listener" in b.log(), timeout=10,
                   what="the log line")
    finally:
        b.close()


def test_a_certificate_rotated_on_disk_is_served_without_a_restart(pki):
    store = pki.path("rotating-store.pem")
    with open(pki.path("broker-store.pem")) as f, open(store, "w") as out:
        out.write(f.read())
    b = ssl_broker(f"ssl.keystore.location={store}")
    try:
        assert peer_common_name(b.ssl_port, pki.path("ca.pem")) == "broker-1"
        pid_before = b.proc.pid
        # A new certificate, swapped in as Kubernetes swaps a Secret.
        pki.cert("ca", "broker2", "broker-1-rotated")
        fresh = store + ".new"
        with open(pki.path("broker2-store.pem")) as f, open(fresh, "w") as out:
            out.write(f.read())
        os.rename(fresh, store)
        wait_until(lambda: peer_common_name(b.ssl_port, pki.path("ca.pem")) == "broker-1-rotated",
                   timeout=30, what="the rotated certificate")
        assert b.proc.pid == pid_before and b.proc.poll() is None
        # Clients keep working on the new certificate.
        p = Producer({"bootstrap.servers": f"127.0.0.1:{b.ssl_port}", "security.protocol": "SSL",
                      "ssl.ca.location": pki.path("ca.pem")})
        p.produce(unique("rotated"), b"after rotation")
        assert p.flush(30) == 0
    finally:
        b.close()
