"""The durability promise, with a real idempotent producer (confluent-kafka,
acks=all): a topic with replication factor 3 and min.insync.replicas=2 on
three brokers (and dedicated controllers) while the partition leader is
killed with SIGKILL and restarted, again and again, and in a second run a
controller with it each time. Afterwards every acknowledged number is read
back exactly once and in order, and nothing a consumer saw during the run
disappeared."""

import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Cluster, wait_until

CYCLES = 20
TOPIC = "safety"


def leader_and_isr(admin):
    md = admin.list_topics(TOPIC, timeout=10)
    p = md.topics[TOPIC].partitions[0]
    return p.leader, sorted(p.isrs)


def safety_run(controllers, kill_controllers):
    cluster = Cluster(brokers=3, controllers=controllers, overrides=["replica.lag.time.max.ms=2000"])
    brokers = sorted(cluster.brokers)
    try:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        for f in admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})]).values():
            f.result(30)
        wait_until(lambda: leader_and_isr(admin)[1] == brokers, what="a full ISR")

        acked = []
        failed = []
        stop = threading.Event()

        def on_delivery(err, msg):
            (failed if err else acked).append(int(msg.value()))

        def produce():
            p = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True,
                          "acks": "all", "linger.ms": 2, "message.timeout.ms": 120000,
                          "topic.metadata.refresh.interval.ms": 500})
            n = 0
            while not stop.is_set():
                try:
                    p.produce(TOPIC, value=str(n).encode(), partition=0, on_delivery=on_delivery)
                    n += 1
                except BufferError:
                    pass
                p.poll(0.005)
            assert p.flush(120) == 0, "unflushed messages"

        seen = {}

        def consume():
            c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "safety-watch",
                          "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 500})
            c.assign([TopicPartition(TOPIC, 0, 0)])
            while not stop.is_set():
                m = c.poll(0.2)
                if m is not None and not m.error():
                    seen[m.offset()] = m.value()
            c.close()

        producer = threading.Thread(target=produce)
        watcher = threading.Thread(target=consume)
        producer.start()
        watcher.start()
        try:
            for cycle in range(CYCLES):
                leader, _ = leader_and_isr(admin)
                before = len(acked)
                cluster.brokers[leader].kill()
                # A controller too: the quorum (three voters) keeps a
                # majority, and every third cycle it loses its leader.
                controller = cluster.controllers.get(cycle % controllers + 1) if kill_controllers else None
                if controller:
                    controller.kill()
                wait_until(lambda: leader_and_isr(admin)[0] not in (leader, -1), timeout=30,
                           what=f"a new leader after killing {leader} (cycle {cycle})")
                if controller:
                    controller.start()
                cluster.brokers[leader].start()
                wait_until(lambda: leader_and_isr(admin)[1] == brokers, timeout=30,
                           what=f"broker {leader} back in the ISR (cycle {cycle})")
                wait_until(lambda: len(acked) > before + 10, timeout=30,
                           what=f"writes acknowledged again (cycle {cycle})")
        finally:
            stop.set()
            producer.join(180)
            watcher.join(30)
        assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:5]}"
        assert len(acked) > CYCLES * 10

        c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "safety-check",
                      "enable.auto.commit": False})
        c.assign([TopicPartition(TOPIC, 0, 0)])
        read = []
        deadline = time.monotonic() + 60
        while len(read) < len(acked) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                read.append((m.offset(), int(m.value())))
        c.close()
        values = [v for _, v in read]
        # Exactly once, in order: the idempotent producer numbered them.
        assert values == list(range(len(values))), "duplicates, gaps or reordering"
        assert set(acked) <= set(values), "an acknowledged write was lost"
        # What the watching consumer saw is still there, at the same offset.
        final = dict(read)
        for offset, value in seen.items():
            assert final.get(offset) == int(value), f"offset {offset} changed under a consumer"
    finally:
        cluster.close()


def test_no_acknowledged_write_is_lost_while_leaders_die():
    safety_run(controllers=1, kill_controllers=False)


def test_no_acknowledged_write_is_lost_while_leaders_and_controllers_die():
    safety_run(controllers=3, kill_controllers=True)
