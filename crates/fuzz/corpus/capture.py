#!/usr/bin/env python3
"""Refills the fuzz corpus from real clients and a real broker.

Starts a strom broker (STROM_BIN, default target/release/strom) that
advertises a recording proxy as its address, so every client connection
goes through the proxy; drives kcat, confluent-kafka and kafka-python
through produce (every codec, idempotent), consume, consumer groups and
admin calls; then stops the broker cleanly and takes files from its data
directory. Writes:

- request/<client>-<api>-v<version>-<n>: request frame bodies (header and
  request, without the size prefix) as the clients sent them;
- record_batch/, validate/: the record batches inside captured produce
  requests (every codec the clients used);
- raft_entry/: batches of the metadata log; metadata_record/: the JSON
  records inside them;
- offsets_record/: batches of __consumer_offsets;
- offset_checkpoint/, leader_epoch_checkpoint/, meta_properties/,
  partition_metadata/, quorum_state/, producer_snapshot/,
  controller_snapshot/: the broker's own files.

Files named crash-* (inputs that once broke a target) are never touched.
Run it from the repository with the test virtualenv:
    tests/.venv/bin/python crates/fuzz/corpus/capture.py
"""

import glob
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
STROM_BIN = os.environ.get("STROM_BIN", os.path.join(ROOT, "target", "release", "strom"))
FRAMES_PER_VERSION = 2
API_NAMES = {}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class RecordingProxy:
    """Forwards 127.0.0.1:port to the broker, keeping every request frame."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.frames = []  # (client, bytes)
        self.client = "unknown"
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                conn.close()
                continue
            threading.Thread(target=self._requests, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True).start()

    def _requests(self, src, dst):
        buf = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            buf += data
            while len(buf) >= 4:
                (size,) = struct.unpack(">i", buf[:4])
                if len(buf) < 4 + size:
                    break
                with self.lock:
                    self.frames.append((self.client, buf[4:4 + size]))
                buf = buf[4 + size:]
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _pipe(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def run_kcat(bootstrap):
    kcat = shutil.which("kcat")
    if not kcat:
        raise RuntimeError("kcat is required (tests/run installs it)")
    base = [kcat, "-b", bootstrap, "-X", "api.version.request=true"]
    subprocess.run(base + ["-L"], check=True, capture_output=True, timeout=60)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        subprocess.run(base + ["-P", "-t", "kcat-topic", "-K", ":", "-z", codec],
                       input=b"k1:hello\nk2:world\n:nokey\n", check=True, timeout=60)
    subprocess.run(base + ["-C", "-t", "kcat-topic", "-o", "beginning", "-e", "-q"],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(base + ["-G", "kcat-group", "-o", "beginning", "-e", "-q", "kcat-topic"],
                   check=True, capture_output=True, timeout=60)


def run_confluent(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions,
                                       NewTopic, AlterConfigOpType, ConfigEntry)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("ck-topic", 2, 1, config={"retention.ms": "3600000"})]).values():
        f.result(timeout=30)
    for f in admin.create_partitions([NewPartitions("ck-topic", 3)]).values():
        f.result(timeout=30)
    res = ConfigResource(ConfigResource.Type.TOPIC, "ck-topic")
    for f in admin.describe_configs([res]).values():
        f.result(timeout=30)
    res = ConfigResource(ConfigResource.Type.TOPIC, "ck-topic",
                         incremental_configs=[ConfigEntry("retention.ms", "7200000",
                                                          incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=30)
    admin.describe_cluster().result(timeout=30)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                      "compression.type": codec, "linger.ms": 5})
        for i in range(20):
            p.produce("ck-topic", key=f"k{i}".encode(), value=f"value {i}".encode() * 4,
                      headers=[("h", b"v")])
        assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ck-group",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["ck-topic"])
    got = 0
    deadline = time.time() + 30
    while got < 20 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)
    c.committed([TopicPartition("ck-topic", 0)], timeout=10)
    c.get_watermark_offsets(TopicPartition("ck-topic", 0), timeout=10)
    c.offsets_for_times([TopicPartition("ck-topic", 0, 0)], timeout=10)
    c.close()
    admin.list_consumer_groups().result(timeout=30)
    for f in admin.describe_consumer_groups(["ck-group"]).values():
        f.result(timeout=30)
    for f in admin.delete_consumer_groups(["ck-group"]).values():
        f.result(timeout=30)
    for f in admin.delete_topics(["ck-topic"]).values():
        f.result(timeout=30)


def run_kafka_python(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kp-topic", 1, 1)])
    p = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip")
    for i in range(10):
        p.send("kp-topic", key=b"k", value=b"v%d" % i)
    p.flush(30)
    p.close()
    c = KafkaConsumer("kp-topic", bootstrap_servers=bootstrap, group_id="kp-group",
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    for _ in c:
        pass
    c.commit()
    c.close()
    for call in (lambda: admin.list_groups(),
                 lambda: admin.describe_groups(["kp-group"]),
                 lambda: admin.list_group_offsets("kp-group"),
                 lambda: admin.describe_topics(["kp-topic"]),
                 lambda: admin.describe_cluster(),
                 lambda: admin.describe_metadata_quorum(),
                 lambda: admin.describe_topic_partitions(["kp-topic"]),
                 lambda: admin.list_partition_reassignments(),
                 lambda: admin.delete_group_offsets("kp-group", [("kp-topic", 0)]),
                 lambda: admin.delete_groups(["kp-group"]),
                 lambda: admin.delete_topics(["kp-topic"])):
        # Only the frames matter here; an answer the client dislikes is
        # not the capture's business.
        try:
            call()
        except Exception as e:  # noqa: BLE001
            print(f"kafka-python: {e!r}", file=sys.stderr)
    admin.close()


def read_varint(b, pos):
    shift = 0
    value = 0
    while True:
        byte = b[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return (value >> 1) ^ -(value & 1), pos


def batches(data):
    """Whole v2 batches of a segment or a produce request's records."""
    pos = 0
    while pos + 12 <= len(data):
        _, length = struct.unpack(">qi", data[pos:pos + 12])
        end = pos + 12 + length
        if length < 49 or end > len(data):
            return
        yield data[pos:end]
        pos = end


def record_values(batch):
    """Values of an uncompressed batch's records."""
    attributes = struct.unpack(">h", batch[21:23])[0]
    if attributes & 7:
        return
    pos = 61
    for _ in range(struct.unpack(">i", batch[57:61])[0]):
        length, pos = read_varint(batch, pos)
        end = pos + length
        p = pos + 1
        _, p = read_varint(batch, p)  # timestamp delta
        _, p = read_varint(batch, p)  # offset delta
        key_len, p = read_varint(batch, p)
        p += max(key_len, 0)
        value_len, p = read_varint(batch, p)
        if value_len >= 0:
            yield batch[p:p + value_len]
        pos = end


def produce_batches(frame):
    """The record batches of a captured Produce request (v3 and later):
    found by their magic byte and a length that fits."""
    found = []
    for i in range(len(frame) - 61):
        if frame[i + 16] != 2:
            continue
        length = struct.unpack(">i", frame[i + 8:i + 12])[0]
        if 49 <= length and i + 12 + length <= len(frame):
            found.append(frame[i:i + 12 + length])
    return found


def clear(target):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith("crash-"):
            os.remove(os.path.join(d, f))
    return d


def write(target, name, data):
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def main():
    if not os.access(STROM_BIN, os.X_OK):
        sys.exit(f"{STROM_BIN} is not an executable (cargo build --release first)")
    tmp = tempfile.mkdtemp(prefix="strom-capture-")
    data_dir = os.path.join(tmp, "data")
    port = free_port()
    proxy = RecordingProxy(port)
    log = open(os.path.join(tmp, "broker.log"), "wb")
    broker = subprocess.Popen(
        [STROM_BIN, "serve",
         "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
         "--override", f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}",
         "--override", f"log.dirs={data_dir}",
         "--override", "http.listener=",
         "--override", "offsets.topic.num.partitions=3",
         "--override", "log.flush.offset.checkpoint.interval.ms=500"],
        stdout=log, stderr=log)

    def ready():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until(ready, what="strom to listen")
        bootstrap = f"127.0.0.1:{proxy.port}"
        for name, run in [("kcat", run_kcat), ("confluent", run_confluent),
                          ("kafka-python", run_kafka_python)]:
            proxy.client = name
            run(bootstrap)
        time.sleep(1.5)  # one checkpoint interval, so the checkpoint files are written
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=60)

    clear("request")
    kept = {}
    batches_seen = []
    for client, frame in proxy.frames:
        api, version = struct.unpack(">hh", frame[:4])
        n = kept.get((client, api, version), 0)
        if api == 0:
            batches_seen += produce_batches(frame)
        if n >= FRAMES_PER_VERSION:
            continue
        kept[(client, api, version)] = n + 1
        write("request", f"{client}-api{api}-v{version}-{n}", frame)
    for target in ("record_batch", "validate"):
        clear(target)
        for i, b in enumerate(dict.fromkeys(batches_seen)):
            write(target, f"produced-{i}", b)

    for target in ("raft_entry", "metadata_record"):
        clear(target)
    for i, b in enumerate(b for seg in sorted(glob.glob(f"{data_dir}/__cluster_metadata-0/*.log"))
                          for b in batches(open(seg, "rb").read())):
        if i < 40:
            write("raft_entry", f"entry-{i}", b)
        for j, v in enumerate(record_values(b)):
            if i < 40:
                write("metadata_record", f"entry-{i}-{j}", v)
    clear("offsets_record")
    n = 0
    for seg in sorted(glob.glob(f"{data_dir}/__consumer_offsets-*/*.log")):
        for b in batches(open(seg, "rb").read()):
            write("offsets_record", f"batch-{n}", b)
            n += 1
    files = {
        "offset_checkpoint": glob.glob(f"{data_dir}/*-checkpoint"),
        "leader_epoch_checkpoint": glob.glob(f"{data_dir}/*/leader-epoch-checkpoint"),
        "meta_properties": glob.glob(f"{data_dir}/meta.properties"),
        "partition_metadata": glob.glob(f"{data_dir}/*/partition.metadata"),
        "quorum_state": glob.glob(f"{data_dir}/*/quorum-state") + glob.glob(f"{data_dir}/quorum-state"),
        "producer_snapshot": glob.glob(f"{data_dir}/*/*.snapshot"),
        "controller_snapshot": glob.glob(f"{data_dir}/**/*.checkpoint", recursive=True)
        + glob.glob(f"{data_dir}/**/snapshots/*", recursive=True),
    }
    for target, paths in files.items():
        clear(target)
        seen = set()
        for p in sorted(paths):
            data = open(p, "rb").read()
            if data in seen or len(seen) >= 6:
                continue
            seen.add(data)
            write(target, f"{os.path.basename(os.path.dirname(p))}-{os.path.basename(p)}", data)
    counts = {t: len(os.listdir(os.path.join(HERE, t))) for t in sorted(os.listdir(HERE))
              if os.path.isdir(os.path.join(HERE, t))}
    print(counts)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
