"""kcat (librdkafka 2.0.2 in Debian) against strom: metadata, produce with
keys, headers and explicit partitions, consume from offsets and times."""

import json
import subprocess
import time

from confluent_kafka.admin import AdminClient, NewTopic

from conftest import stored_codecs, unique

KCAT_TIMEOUT = 60


def kcat(broker, *args, input=None):
    r = subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=input, capture_output=True,
                       timeout=KCAT_TIMEOUT, text=True)
    assert r.returncode == 0, f"kcat {args} failed ({r.returncode}): {r.stderr}"
    return r.stdout


def make_topic(broker, partitions):
    name = unique("kcat")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)
    return name


def test_metadata_listing(broker):
    out = kcat(broker, "-L")
    assert "1 brokers:" in out
    assert f"broker 1 at 127.0.0.1:{broker.port}" in out
    meta = json.loads(kcat(broker, "-L", "-J"))
    assert meta["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]


def test_produce_consume_keys_headers_partitions_and_offsets(broker):
    topic = make_topic(broker, 3)
    lines = "".join(f"k{i}:v{i}\n" for i in range(10))
    kcat(broker, "-t", topic, "-P", "-p", "1", "-K", ":", "-H", "h1=x", "-H", "h2=y", input=lines)
    kcat(broker, "-t", topic, "-P", "-p", "2", input="plain\n")
    out = kcat(broker, "-t", topic, "-C", "-p", "1", "-e", "-o", "beginning", "-f", "%k|%s|%o|%h\n")
    rows = [line.split("|") for line in out.splitlines()]
    assert [r[0] for r in rows] == [f"k{i}" for i in range(10)]
    assert [r[1] for r in rows] == [f"v{i}" for i in range(10)]
    assert [int(r[2]) for r in rows] == list(range(10))
    assert all(r[3] == "h1=x,h2=y" for r in rows)
    # From an absolute offset, and the last two from the end.
    out = kcat(broker, "-t", topic, "-C", "-p", "1", "-e", "-o", "7", "-f", "%o:%s\n")
    assert out.splitlines() == ["7:v7", "8:v8", "9:v9"]
    out = kcat(broker, "-t", topic, "-C", "-p", "1", "-e", "-o", "-2", "-f", "%o:%s\n")
    assert out.splitlines() == ["8:v8", "9:v9"]
    # Partition 2 holds exactly the plain message, partition 0 nothing.
    assert kcat(broker, "-t", topic, "-C", "-p", "2", "-e", "-f", "%s\n").splitlines() == ["plain"]
    assert kcat(broker, "-t", topic, "-C", "-p", "0", "-e", "-f", "%s\n") == ""


def test_consume_from_a_timestamp(broker):
    topic = make_topic(broker, 1)
    kcat(broker, "-t", topic, "-P", input="early-1\nearly-2\n")
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    kcat(broker, "-t", topic, "-P", input="late-1\nlate-2\n")
    out = kcat(broker, "-t", topic, "-C", "-e", "-o", f"s@{cut}", "-f", "%s\n")
    assert out.splitlines() == ["late-1", "late-2"]


def test_auto_created_topic_through_produce(broker):
    topic = unique("kcat-auto")
    kcat(broker, "-t", topic, "-P", input="hello\nworld\n")
    assert kcat(broker, "-t", topic, "-C", "-e", "-f", "%s\n").splitlines() == ["hello", "world"]


def test_compressed_batches_are_stored_as_sent(broker):
    topic = make_topic(broker, 1)
    payload = "x" * 4000 + "\n"
    # gzip=1, snappy=2, lz4=3, zstd=4. (librdkafka enables lz4 only when
    # the broker offers FindCoordinator.)
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        kcat(broker, "-t", topic, "-P", "-z", codec, input=payload)
    assert stored_codecs(broker.data_dir, topic) == [1, 2, 3, 4]
    out = kcat(broker, "-t", topic, "-C", "-e", "-f", "%S\n")
    assert out.splitlines() == ["4000"] * 4
