"""confluent-kafka (librdkafka) against strom: the admin API, produce with
every acks setting and compression codec, consume from the beginning, an
offset or a timestamp, and byte-exact payloads across restarts and kill -9."""

import time

import pytest
from confluent_kafka import (Consumer, ElectionType, KafkaError, KafkaException, Producer, TopicCollection,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewPartitions, NewTopic

from conftest import stored_codecs, unique

TIMEOUT = 30


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, name, partitions=1, config=None, replication_factor=1):
    a = admin(broker)  # must outlive the futures
    fs = a.create_topics([NewTopic(name, partitions, replication_factor, config=config or {})])
    for f in fs.values():
        f.result(TIMEOUT)


def produce_all(broker, topic, messages, **conf):
    """Produces (partition, key, value, headers) tuples; returns the
    delivery reports in order."""
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.key(), msg.value()))

    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})
    for partition, key, value, headers in messages:
        p.produce(topic, value=value, key=key, partition=partition, headers=headers, on_delivery=on_delivery)
    assert p.flush(TIMEOUT) == 0
    return reports


def consume(broker, topic, partition, start, count, **conf):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "strom-tests-assign",
                  "enable.auto.commit": False, **conf})
    try:
        c.assign([TopicPartition(topic, partition, start)])
        got = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            got.append((m.offset(), m.key(), m.value(), m.headers(), m.timestamp()))
        return got
    finally:
        c.close()


def test_admin_create_describe_alter_partitions_delete(broker):
    a = admin(broker)
    name = unique("ck-admin")
    create(broker, name, 2, {"retention.ms": "3600000", "cleanup.policy": "delete"})
    md = a.list_topics(timeout=TIMEOUT)
    assert name in md.topics and len(md.topics[name].partitions) == 2
    assert md.topics[name].partitions[0].leader == 1
    # Existing name and invalid input get Kafka's errors.
    with pytest.raises(KafkaException) as e:
        create(broker, name)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as e:
        create(broker, unique("ck-bad"), 1, {"retention.ms": "never"})
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    with pytest.raises(KafkaException) as e:
        create(broker, unique("ck-rf"), 1, replication_factor=3)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    # validate_only creates nothing.
    dry = unique("ck-dry")
    for f in a.create_topics([NewTopic(dry, 1, 1)], validate_only=True).values():
        f.result(TIMEOUT)
    assert dry not in a.list_topics(timeout=TIMEOUT).topics
    # Configs of the topic, with sources; and of the broker.
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)])
    configs = list(res.values())[0].result(TIMEOUT)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert len(configs) > 20
    res = a.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "1")])
    bconf = list(res.values())[0].result(TIMEOUT)
    assert bconf["num.partitions"].value == "1"
    # More partitions.
    for f in a.create_partitions([NewPartitions(name, 5)]).values():
        f.result(TIMEOUT)
    assert len(a.list_topics(name, timeout=TIMEOUT).topics[name].partitions) == 5
    with pytest.raises(KafkaException) as e:
        for f in a.create_partitions([NewPartitions(name, 3)]).values():
            f.result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    # Describe cluster and topics.
    cluster = a.describe_cluster().result(TIMEOUT)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1
    desc = a.describe_topics(TopicCollection([name]))[name].result(TIMEOUT)
    assert len(desc.partitions) == 5 and desc.topic_id is not None
    # Delete.
    for f in a.delete_topics([name]).values():
        f.result(TIMEOUT)
    assert name not in a.list_topics(timeout=TIMEOUT).topics
    with pytest.raises(KafkaException) as e:
        for f in a.delete_topics([name]).values():
            f.result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_admin_legacy_alter_configs_replaces_a_topics_overrides(broker):
    """AlterConfigs (not the incremental one): the listed configs become the
    topic's whole set of overrides; the others fall back to their defaults."""
    a = admin(broker)
    name = unique("ck-alter")
    create(broker, name, 1, {"retention.ms": "3600000", "max.message.bytes": "2000"})

    def configs():
        res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)])
        return list(res.values())[0].result(TIMEOUT)

    resource = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"cleanup.policy": "compact"})
    for f in a.alter_configs([resource]).values():
        f.result(TIMEOUT)
    after = configs()
    assert after["cleanup.policy"].value == "compact"
    assert after["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert after["retention.ms"].value == "604800000"
    assert after["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert after["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    # validate_only changes nothing; bad input gets Kafka's errors.
    dry = ConfigResource(ConfigResource.Type.TOPIC, name, set_config={"retention.ms": "5"})
    for f in a.alter_configs([dry], validate_only=True).values():
        f.result(TIMEOUT)
    assert configs()["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    for bad, code in (({"retention.ms": "never"}, KafkaError.INVALID_CONFIG),
                      ({"no.such.key": "1"}, KafkaError.INVALID_CONFIG)):
        with pytest.raises(KafkaException) as e:
            for f in a.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, name, set_config=bad)]).values():
                f.result(TIMEOUT)
        assert e.value.args[0].code() == code
    with pytest.raises(KafkaException) as e:
        gone = ConfigResource(ConfigResource.Type.TOPIC, unique("ck-gone"), set_config={"retention.ms": "1"})
        for f in a.alter_configs([gone]).values():
            f.result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert configs()["cleanup.policy"].value == "compact"


def test_admin_dynamic_broker_configs_are_described_with_their_sources(broker):
    """A replication throttle rate set for one broker, as
    kafka-configs.sh --describe --entity-type brokers shows it."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    a = admin(broker)

    def alter(name, key, value):
        op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
        entry = ConfigEntry(key, value, incremental_operation=op)
        resource = ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=[entry])
        for f in a.incremental_alter_configs([resource]).values():
            f.result(TIMEOUT)

    def describe(name):
        res = a.describe_configs([ConfigResource(ConfigResource.Type.BROKER, name)])
        return list(res.values())[0].result(TIMEOUT)

    # confluent-kafka cannot name the cluster default (empty) resource:
    # test_kafka_python sets it.
    alter("1", "leader.replication.throttled.rate", "1000")
    try:
        mine = describe("1")
        assert mine["leader.replication.throttled.rate"].value == "1000"
        assert mine["leader.replication.throttled.rate"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert not mine["leader.replication.throttled.rate"].is_read_only
        assert mine["follower.replication.throttled.rate"].source == ConfigSource.DEFAULT_CONFIG.value
        assert mine["num.partitions"].source in (ConfigSource.DEFAULT_CONFIG.value,
                                                 ConfigSource.STATIC_BROKER_CONFIG.value)
    finally:
        alter("1", "leader.replication.throttled.rate", None)
    after = describe("1")
    assert after["leader.replication.throttled.rate"].value == str(2**63 - 1)
    assert after["leader.replication.throttled.rate"].source == ConfigSource.DEFAULT_CONFIG.value


def test_admin_elect_leaders(broker):
    a = admin(broker)
    name = unique("ck-elect")
    create(broker, name, 2)
    # Every partition is led by its preferred (only) replica already.
    asked = [TopicPartition(name, 0), TopicPartition(name, 1), TopicPartition(name, 7)]
    for election in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        results = a.elect_leaders(election, asked).result(TIMEOUT)
        codes = {(tp.topic, tp.partition): (err.code() if err else None) for tp, err in results.items()}
        assert codes == {
            (name, 0): KafkaError.ELECTION_NOT_NEEDED,
            (name, 1): KafkaError.ELECTION_NOT_NEEDED,
            (name, 7): KafkaError.UNKNOWN_TOPIC_OR_PART,
        }
    # All partitions: nothing needs an election, so nothing is listed.
    assert a.elect_leaders(ElectionType.PREFERRED, None).result(TIMEOUT) == {}


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_acks_and_codecs_round_trip(broker, acks, codec):
    topic = unique(f"ck-{codec}-{acks}")
    create(broker, topic, 2)
    messages = [(i % 2, f"key-{i}".encode(), (f"value-{i}-" + "p" * 500).encode(), [("n", str(i).encode())])
                for i in range(200)]
    reports = produce_all(broker, topic, messages, acks=acks, **{"compression.type": codec})
    assert all(err is None for err, *_ in reports)
    if acks != "0":
        for partition in (0, 1):
            offsets = [r[2] for r in reports if r[1] == partition]
            assert offsets == list(range(100)), f"partition {partition}: {offsets[:5]}..."
    for partition in (0, 1):
        got = consume(broker, topic, partition, 0, 100)
        want = [m for m in messages if m[0] == partition]
        assert [(o, k, v) for o, k, v, _, _ in got] == [(i, m[1], m[2]) for i, m in enumerate(want)]
        assert [h for _, _, _, h, _ in got] == [m[3] for m in want]
        expected_codec = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
        assert set(stored_codecs(broker.data_dir, topic, partition)) == {expected_codec}


def test_consume_from_beginning_offset_and_timestamp(broker):
    topic = unique("ck-seek")
    create(broker, topic, 1)
    produce_all(broker, topic, [(0, None, f"first-{i}".encode(), None) for i in range(5)])
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    produce_all(broker, topic, [(0, None, f"second-{i}".encode(), None) for i in range(5)])
    everything = consume(broker, topic, 0, 0, 10)
    assert [v for _, _, v, _, _ in everything] == [f"first-{i}".encode() for i in range(5)] + \
        [f"second-{i}".encode() for i in range(5)]
    assert [v for _, _, v, _, _ in consume(broker, topic, 0, 7, 3)] == [b"second-2", b"second-3", b"second-4"]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "strom-tests-times"})
    try:
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, cut)], timeout=TIMEOUT)
        assert tp.offset == 5
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        assert (low, high) == (0, 10)
    finally:
        c.close()
    assert [v for _, _, v, _, _ in consume(broker, topic, 0, 5, 5)] == [f"second-{i}".encode() for i in range(5)]


def _all_payloads(broker, topic, partitions, count):
    return {p: [(o, k, v, h) for o, k, v, h, _ in consume(broker, topic, p, 0, count)] for p in range(partitions)}


def test_payloads_are_identical_after_a_clean_restart(fresh_broker):
    topic = unique("ck-restart")
    create(fresh_broker, topic, 3, {"retention.ms": "7200000"})
    messages = [(i % 3, str(i).encode(), bytes([i % 256]) * (i % 700), [("i", str(i).encode())]) for i in range(600)]
    produce_all(fresh_broker, topic, messages, acks="all", **{"compression.type": "snappy"})
    before = _all_payloads(fresh_broker, topic, 3, 200)
    fresh_broker.restart(clean=True)
    assert _all_payloads(fresh_broker, topic, 3, 200) == before
    a = admin(fresh_broker)
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    assert list(res.values())[0].result(TIMEOUT)["retention.ms"].value == "7200000"


@pytest.mark.broker_overrides("log.flush.interval.messages=1", "log.segment.bytes=65536")
def test_acknowledged_writes_survive_kill_9_with_flush_messages_1(fresh_broker):
    topic = unique("ck-kill")
    create(fresh_broker, topic, 2)
    messages = [(i % 2, None, f"durable-{i}".encode() * 20, None) for i in range(1000)]
    reports = produce_all(fresh_broker, topic, messages, acks="all")
    assert all(err is None for err, *_ in reports)
    before = _all_payloads(fresh_broker, topic, 2, 500)
    fresh_broker.restart(clean=False)
    assert "had_clean_shutdown=false" in fresh_broker.log()
    assert _all_payloads(fresh_broker, topic, 2, 500) == before
