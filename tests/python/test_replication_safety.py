"""The durability promise, with a real idempotent producer (confluent-kafka,
acks=all): a topic with replication factor 3 and min.insync.replicas=2 on
three brokers (and dedicated controllers) while the partition leader is
taken away again and again: killed with SIGKILL and restarted (in a second
run a controller with it), cut off from its followers, cut off from the
controllers but not from clients, or paused with SIGSTOP for longer than
replica.lag.time.max.ms. Afterwards every acknowledged number is read back
exactly once and in order, and nothing a consumer saw during the run
disappeared; so a deposed leader never acknowledged a write it could not
replicate."""

import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Cluster, Netfilter, partition_view, wait_until

CYCLES = 20
# Partitions and pauses take longer per cycle (a session timeout each).
FAULT_CYCLES = 10
TOPIC = "safety"
LAG_TIME_MS = 2000


def views(cluster, exclude=None):
    """Each broker's own (leader, ISR) of the partition, but `exclude`'s."""
    return {node_id: partition_view(b, TOPIC) for node_id, b in cluster.brokers.items()
            if node_id != exclude}


def new_leader_elected(cluster, old):
    """Every broker but `old` names one leader, and not `old`."""
    leaders = {leader for leader, _ in views(cluster, exclude=old).values()}
    return len(leaders) == 1 and leaders.isdisjoint({old, -1, None})


def full_isr_everywhere(cluster):
    """Every broker sees one leader and every broker in the ISR."""
    seen = views(cluster).values()
    return len({leader for leader, _ in seen}) == 1 and all(
        isr == sorted(cluster.brokers) for _, isr in seen)


def current_leader(cluster):
    found = []

    def agreed():
        leaders = {leader for leader, _ in views(cluster).values()}
        found.append(leaders.pop() if len(leaders) == 1 else None)
        return found[-1] not in (None, -1)

    wait_until(agreed, what="a partition leader every broker agrees on")
    return found[-1]

class Kill:
    """SIGKILL the leader (and with `controllers`, a controller each
    cycle: the quorum of three keeps a majority, and every third cycle it
    loses its leader); restart them once a new leader is elected."""

    def __init__(self, kill_controllers=False):
        self.kill_controllers = kill_controllers
        self.controller = None

    def inject(self, cluster, leader, cycle):
        cluster.brokers[leader].kill()
        if self.kill_controllers:
            self.controller = cluster.controllers[cycle % len(cluster.controllers) + 1]
            self.controller.kill()

    def took_effect(self, cluster, leader):
        return new_leader_elected(cluster, leader)

    def heal(self, cluster, leader):
        if self.controller:
            self.controller.start()
        cluster.brokers[leader].start()


class IsolateFromFollowers:
    """Netfilter drops everything between the leader and its followers; it
    still reaches the controller and clients. It must shrink the ISR to
    itself (and then refuse acks=all below min.insync.replicas) rather
    than acknowledge what nobody else has."""

    def __init__(self, net):
        self.net = net

    def inject(self, cluster, leader, cycle):
        for node_id, b in cluster.brokers.items():
            if node_id != leader:
                self.net.cut(cluster.brokers[leader].host, b.host)

    def took_effect(self, cluster, leader):
        return all(v == (leader, [leader]) for v in views(cluster, exclude=leader).values())

    def heal(self, cluster, leader):
        self.net.heal()


class IsolateFromControllers:
    """Netfilter drops everything between the leader and every controller;
    clients and followers still reach it. The controllers fence it and
    elect another leader; the deposed one, still sent writes by clients
    with old metadata, must not acknowledge them."""

    def __init__(self, net):
        self.net = net

    def inject(self, cluster, leader, cycle):
        for c in cluster.controllers.values():
            self.net.cut(cluster.brokers[leader].host, c.host)

    def took_effect(self, cluster, leader):
        return new_leader_elected(cluster, leader)

    def heal(self, cluster, leader):
        self.net.heal()


class Pause:
    """SIGSTOP the leader until another one is elected and longer than
    replica.lag.time.max.ms, then SIGCONT: it wakes up believing it leads,
    with requests queued on its sockets."""

    def __init__(self):
        self.paused_at = 0.0

    def inject(self, cluster, leader, cycle):
        cluster.brokers[leader].pause()
        self.paused_at = time.monotonic()

    def took_effect(self, cluster, leader):
        long_enough = time.monotonic() - self.paused_at > 1.5 * LAG_TIME_MS / 1000
        return long_enough and new_leader_elected(cluster, leader)

    def heal(self, cluster, leader):
        cluster.brokers[leader].resume()


def safety_run(fault, cluster, cycles):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for f in admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})]).values():
        f.result(30)
    wait_until(lambda: full_isr_everywhere(cluster), what="a full ISR")

    acked = []
    failed = []
    unflushed = []
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
        unflushed.append(p.flush(120))

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
        for cycle in range(cycles):
            leader = current_leader(cluster)
            before = len(acked)
            fault.inject(cluster, leader, cycle)
            try:
                wait_until(lambda: fault.took_effect(cluster, leader), timeout=30,
                           what=f"{type(fault).__name__} of leader {leader} to take effect (cycle {cycle})")
            finally:
                fault.heal(cluster, leader)
            wait_until(lambda: full_isr_everywhere(cluster), timeout=30,
                       what=f"broker {leader} back in the ISR (cycle {cycle})")
            wait_until(lambda: len(acked) > before + 10, timeout=30,
                       what=f"writes acknowledged again (cycle {cycle})")
    finally:
        stop.set()
        producer.join(180)
        watcher.join(30)
    assert unflushed == [0], f"the producer ended with {unflushed} messages undelivered"
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:5]}"
    assert len(acked) > cycles * 10

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


def cluster_of(controllers, first_host=None):
    return Cluster(brokers=3, controllers=controllers, first_host=first_host,
                   overrides=[f"replica.lag.time.max.ms={LAG_TIME_MS}"])


def run_with(fault, cluster, cycles):
    try:
        safety_run(fault, cluster, cycles)
    except BaseException:
        cluster.print_log_tails()
        raise
    finally:
        cluster.close()


def test_no_acknowledged_write_is_lost_while_leaders_die():
    run_with(Kill(), cluster_of(1), CYCLES)


def test_no_acknowledged_write_is_lost_while_leaders_and_controllers_die():
    run_with(Kill(kill_controllers=True), cluster_of(3), CYCLES)


# Own loopback addresses per test (127.0.0.20 and up; the Rust fault tests
# use .2 to .10), since network rules match addresses.

def test_no_acknowledged_write_is_lost_while_leaders_are_cut_off_from_followers():
    net = Netfilter()
    try:
        run_with(IsolateFromFollowers(net), cluster_of(1, first_host=20), FAULT_CYCLES)
    finally:
        net.close()


def test_no_acknowledged_write_is_lost_while_leaders_are_cut_off_from_controllers():
    net = Netfilter()
    try:
        run_with(IsolateFromControllers(net), cluster_of(3, first_host=30), FAULT_CYCLES)
    finally:
        net.close()


def test_no_acknowledged_write_is_lost_while_leaders_are_paused():
    run_with(Pause(), cluster_of(1, first_host=40), FAULT_CYCLES)
