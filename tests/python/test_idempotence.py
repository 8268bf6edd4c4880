"""Idempotent producers against strom: retries after the broker is killed and
restarted leave no duplicate and no gap; default client configs (which turn
idempotence on) just work."""

import threading
import time

import pytest

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

from conftest import unique, wait_until

TIMEOUT = 60


def read_values(broker, topic, count):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "strom-tests-idem", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        values = []
        deadline = time.monotonic() + TIMEOUT
        while len(values) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert not m.error(), m.error()
            values.append(int(m.value()))
        # Nothing beyond the expected count either.
        m = c.poll(1.0)
        while m is not None and m.error():
            m = c.poll(0.5)
        assert m is None, f"unexpected extra record {m.value()!r}"
        return values
    finally:
        c.close()


@pytest.mark.broker_overrides("log.flush.interval.messages=1")
def test_retries_across_broker_kills_leave_no_duplicates_or_gaps(fresh_broker):
    """fsync per batch widens the window in which a batch is written but not
    yet acknowledged, so kills leave batches the producer must retry."""
    topic = unique("idem")
    a = AdminClient({"bootstrap.servers": fresh_broker.bootstrap})
    for f in a.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(TIMEOUT)
    delivered = []
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append(int(msg.value()))

    p = Producer({"bootstrap.servers": fresh_broker.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 2, "batch.num.messages": 200, "message.timeout.ms": 120000,
                  "queue.buffering.max.messages": 2000,
                  "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500})
    stop = threading.Event()
    produced = []

    def produce():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, str(i).encode(), partition=0, on_delivery=on_delivery)
                i += 1
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        produced.append(i)
        p.flush(TIMEOUT)

    t = threading.Thread(target=produce)
    t.start()
    try:
        # Kill the broker three times while batches are in flight.
        for _ in range(3):
            target = len(delivered) + 3000
            wait_until(lambda: len(delivered) > target, timeout=TIMEOUT, what="deliveries")
            fresh_broker.restart(clean=False)
        target = len(delivered) + 3000
        wait_until(lambda: len(delivered) > target, timeout=TIMEOUT, what="deliveries after the last restart")
    finally:
        stop.set()
        t.join(TIMEOUT)
    assert p.flush(TIMEOUT) == 0
    total = produced[0]
    assert not errors, errors[:3]
    assert sorted(delivered) == list(range(total))
    assert read_values(fresh_broker, topic, total) == list(range(total)), "duplicates, gaps or reordering"
    assert fresh_broker.log().count("had_clean_shutdown=false") == 3
    print("records:", total, "duplicates answered:",
          fresh_broker.log().count("duplicate batch of an idempotent producer"))


def test_kafka_python_defaults_are_idempotent(broker):
    topic = unique("idem-kp")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)  # acks=all, idempotence on
    futures = [p.send(topic, str(i).encode(), partition=0) for i in range(500)]
    p.flush(TIMEOUT)
    assert [f.get(TIMEOUT).offset for f in futures] == list(range(500))
    p.close()
    assert read_values(broker, topic, 500) == list(range(500))
