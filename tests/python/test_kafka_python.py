"""kafka-python 3 against strom: admin operations, produce with every acks
setting and compression codec (including lz4), consume from the beginning,
an offset or a timestamp, and byte-exact payloads across a restart."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
from kafka.errors import (InvalidPartitionsError, InvalidReplicationFactorError, TopicAlreadyExistsError,
                          UnknownTopicOrPartitionError)

from conftest import stored_codecs, unique

TIMEOUT = 30


def admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)


def consumer(broker, **conf):
    return KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                         consumer_timeout_ms=2000, **conf)


def read(broker, topic, partition, start, count):
    c = consumer(broker)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, start)
        got = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < count and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value, r.headers) for r in records)
        return got
    finally:
        c.close()


def test_admin_operations(broker):
    a = admin(broker)
    try:
        name = unique("kp-admin")
        a.create_topics([NewTopic(name, 3, 1, topic_configs={"retention.bytes": "1048576"})])
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(name, 1, 1)])
        with pytest.raises(InvalidReplicationFactorError):
            a.create_topics([NewTopic(unique("kp-rf"), 1, 2)])
        dry = unique("kp-dry")
        a.create_topics([NewTopic(dry, 1, 1)], validate_only=True)
        assert name in a.list_topics() and dry not in a.list_topics()
        [desc] = a.describe_topics([name])
        assert len(desc["partitions"]) == 3 and desc["error_code"] == 0
        # Overrides by default; every key on request, with the broker's defaults.
        modified = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        topic_cfg = modified["TOPIC"][name] if "TOPIC" in modified else list(list(modified.values())[0].values())[0]
        assert set(topic_cfg) == {"retention.bytes"}
        everything = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)], config_filter="all")
        all_cfg = list(list(everything.values())[0].values())[0]
        assert len(all_cfg) > 20 and "segment.ms" in all_cfg
        a.create_partitions({name: NewPartitions(5)})
        with pytest.raises(InvalidPartitionsError):
            a.create_partitions({name: NewPartitions(2)})
        [desc] = a.describe_topics([name])
        assert len(desc["partitions"]) == 5
        cluster = a.describe_cluster()
        assert cluster["controller_id"] == 1
        assert [b["broker_id"] for b in cluster["brokers"]] == [1]
        a.delete_topics([name])
        assert name not in a.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_topics([name])
    finally:
        a.close()


@pytest.mark.parametrize("acks", [0, 1, "all"])
@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_produce_acks_and_codecs_round_trip(broker, acks, codec):
    topic = unique(f"kp-{codec}-{acks}")
    a = admin(broker)
    a.create_topics([NewTopic(topic, 1, 1)])
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=acks, compression_type=codec, linger_ms=5)
    futures = [p.send(topic, key=f"k{i}".encode(), value=(f"v{i}-" + "q" * 300).encode(),
                      headers=[("i", str(i).encode())], partition=0) for i in range(150)]
    p.flush(TIMEOUT)
    metas = [f.get(TIMEOUT) for f in futures]
    p.close()
    if acks != 0:
        assert [m.offset for m in metas] == list(range(150))
    got = read(broker, topic, 0, 0, 150)
    assert [(o, k, v) for o, k, v, _ in got] == [(i, f"k{i}".encode(), (f"v{i}-" + "q" * 300).encode())
                                                 for i in range(150)]
    assert all(h == [("i", str(o).encode())] for o, _, _, h in got)
    expected = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    assert set(stored_codecs(broker.data_dir, topic)) == {expected}


def test_seek_beginning_offset_and_time(broker):
    topic = unique("kp-seek")
    a = admin(broker)
    a.create_topics([NewTopic(topic, 1, 1)])
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(4):
        p.send(topic, f"a{i}".encode(), partition=0)
    p.flush()
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    for i in range(4):
        p.send(topic, f"b{i}".encode(), partition=0)
    p.flush()
    p.close()
    c = consumer(broker)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 8}
        found = c.offsets_for_times({tp: cut})[tp]
        assert found.offset == 4 and found.timestamp >= cut
        c.seek_to_beginning(tp)
        assert c.position(tp) == 0
    finally:
        c.close()
    assert [v for _, _, v, _ in read(broker, topic, 0, 6, 2)] == [b"b2", b"b3"]


def test_payloads_survive_a_restart(fresh_broker):
    topic = unique("kp-restart")
    a = admin(fresh_broker)
    a.create_topics([NewTopic(topic, 1, 1)])
    a.close()
    p = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap, acks="all", compression_type="lz4")
    for i in range(300):
        p.send(topic, bytes([i % 256]) * (i + 1), partition=0)
    p.flush(TIMEOUT)
    p.close()
    before = read(fresh_broker, topic, 0, 0, 300)
    assert len(before) == 300
    fresh_broker.restart(clean=True)
    assert read(fresh_broker, topic, 0, 0, 300) == before
