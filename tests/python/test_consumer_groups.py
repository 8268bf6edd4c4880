"""Consumer groups against strom with real clients: members in separate
processes split a topic's partitions, take over from a member that crashed
after its session times out, resume from committed offsets (across broker
restarts too), and static members come back without a rebalance. kcat -G,
kafka-python and the admin APIs of both Python clients are covered too."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KTopicPartition

from conftest import unique, wait_until

TIMEOUT = 60
HERE = os.path.dirname(os.path.abspath(__file__))

# Groups start rebalancing at once instead of after Kafka's 3 s delay.
FAST_GROUPS = "group.initial.rebalance.delay.ms=0"


class Member:
    """A group member process (group_member.py) and what it reported."""

    def __init__(self, broker, group, topic, instance_id=None, session_timeout_ms=6000, strategy="range"):
        args = [sys.executable, os.path.join(HERE, "group_member.py"), "--bootstrap", broker.bootstrap,
                "--group", group, "--topic", topic, "--session-timeout-ms", str(session_timeout_ms),
                "--strategy", strategy]
        if instance_id:
            args += ["--instance-id", instance_id]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def assignment(self):
        """The latest assignment reported (None before the first)."""
        with self.lock:
            assigned = [e["partitions"] for e in self.events if e["event"] == "assigned"]
        return assigned[-1] if assigned else None

    def assignment_events(self):
        with self.lock:
            return sum(1 for e in self.events if e["event"] == "assigned")

    def records(self):
        with self.lock:
            return [(e["partition"], e["offset"], e["value"]) for e in self.events if e["event"] == "record"]

    def errors(self):
        with self.lock:
            return [e["error"] for e in self.events if e["event"] == "error"]

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        """SIGTERM: the member closes its consumer and leaves the group."""
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0, self.proc.stderr.read()


@pytest.fixture
def members():
    started = []
    yield started
    for m in started:
        if m.proc.poll() is None:
            m.kill()


def create_topic(broker, partitions):
    topic = unique("groups")
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(TIMEOUT)
    return topic


def produce(broker, topic, partitions, per_partition, tag):
    """`per_partition` records on each partition, valued `tag-p-i`."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for partition in range(partitions):
        for i in range(per_partition):
            p.produce(topic, value=f"{tag}-{partition}-{i}".encode(), partition=partition)
    assert p.flush(TIMEOUT) == 0


def balanced(group_members, partitions):
    """Every member has its share and together they have every partition once."""
    assignments = [m.assignment() for m in group_members]
    if any(a is None for a in assignments):
        return False
    flat = sorted(p for a in assignments for p in a)
    share = partitions // len(group_members)
    return flat == list(range(partitions)) and all(len(a) == share for a in assignments)


def values(group_members):
    return sorted(v for m in group_members for (_, _, v) in m.records())


def expected(partitions, per_partition, tag):
    return sorted(f"{tag}-{p}-{i}" for p in range(partitions) for i in range(per_partition))


@pytest.mark.broker_overrides(FAST_GROUPS)
@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_members_split_partitions_take_over_from_a_crashed_member_and_resume(fresh_broker, members, strategy):
    """Eager (range) and incremental (cooperative-sticky) rebalancing."""
    broker = fresh_broker
    topic = create_topic(broker, 6)
    group = unique("g")
    a, b, c = (Member(broker, group, topic, strategy=strategy) for _ in range(3))
    members += [a, b, c]
    wait_until(lambda: balanced([a, b, c], 6), timeout=TIMEOUT, what="three members with two partitions each")

    produce(broker, topic, 6, 5, "first")
    wait_until(lambda: values([a, b, c]) == expected(6, 5, "first"), timeout=TIMEOUT,
               what="every record consumed once")
    for m in (a, b, c):
        owned = set(m.assignment())
        assert {p for (p, _, _) in m.records()} <= owned, "a member read a partition it does not own"

    # A crash: no LeaveGroup. The others take over once its session ends.
    a.kill()
    crashed_partitions = set(a.assignment())
    wait_until(lambda: balanced([b, c], 6), timeout=TIMEOUT, what="two members to take over")
    produce(broker, topic, 6, 3, "second")
    wait_until(lambda: sorted(v for v in values([b, c]) if v.startswith("second")) == expected(6, 3, "second"),
               timeout=TIMEOUT, what="the survivors to consume every new record")
    taken_over = {p for m in (b, c) for (p, _, v) in m.records() if v.startswith("second")}
    assert crashed_partitions <= taken_over

    # Everyone leaves cleanly; a new member resumes from the committed
    # offsets: it sees only what was produced after, although it would
    # start from the beginning (auto.offset.reset=earliest) without them.
    b.stop()
    c.stop()
    produce(broker, topic, 6, 2, "third")
    d = Member(broker, group, topic, strategy=strategy)
    members.append(d)
    wait_until(lambda: values([d]) == expected(6, 2, "third"), timeout=TIMEOUT,
               what="the new member to read exactly the uncommitted records")
    time.sleep(0.5)
    assert values([d]) == expected(6, 2, "third"), "records consumed twice"
    assert not any(m.errors() for m in (a, b, c, d)), [m.errors() for m in (a, b, c, d)]


@pytest.mark.broker_overrides(FAST_GROUPS)
@pytest.mark.parametrize("clean", [True, False], ids=["clean-restart", "kill-9"])
def test_committed_offsets_survive_broker_restarts(fresh_broker, members, clean):
    broker = fresh_broker
    topic = create_topic(broker, 3)
    group = unique("g")
    produce(broker, topic, 3, 4, "before")
    m = Member(broker, group, topic)
    members.append(m)
    wait_until(lambda: values([m]) == expected(3, 4, "before"), timeout=TIMEOUT, what="the first records")
    m.stop()

    broker.restart(clean=clean)
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(TIMEOUT)
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in listed.topic_partitions) == \
        [(topic, p, 4) for p in range(3)]

    produce(broker, topic, 3, 2, "after")
    n = Member(broker, group, topic)
    members.append(n)
    wait_until(lambda: values([n]) == expected(3, 2, "after"), timeout=TIMEOUT,
               what="the records produced after the restart only")


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_static_member_restart_within_session_keeps_its_partitions_without_rebalance(fresh_broker, members):
    broker = fresh_broker
    topic = create_topic(broker, 4)
    group = unique("g")
    a = Member(broker, group, topic, instance_id="member-a", session_timeout_ms=30000)
    b = Member(broker, group, topic, instance_id="member-b", session_timeout_ms=30000)
    members += [a, b]
    wait_until(lambda: balanced([a, b], 4), timeout=TIMEOUT, what="two static members with two partitions each")
    before = a.assignment()
    b_events = b.assignment_events()

    a.kill()
    a2 = Member(broker, group, topic, instance_id="member-a", session_timeout_ms=30000)
    members.append(a2)
    wait_until(lambda: a2.assignment() is not None and len(a2.assignment()) > 0, timeout=TIMEOUT,
               what="the restarted static member to get its partitions back")
    assert a2.assignment() == before
    produce(broker, topic, 4, 2, "static")
    wait_until(lambda: sorted(values([a2, b])) == expected(4, 2, "static"), timeout=TIMEOUT,
               what="both members to consume")
    assert b.assignment_events() == b_events, "the other member went through a rebalance"


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_kcat_balanced_consumer_commits_and_resumes(fresh_broker):
    broker = fresh_broker
    topic = create_topic(broker, 2)
    group = unique("kcat")

    def kcat_group():
        out = subprocess.run(["kcat", "-b", broker.bootstrap, "-G", group, "-X", "auto.offset.reset=earliest",
                              "-e", "-q", "-f", "%s\n", topic], capture_output=True, text=True, timeout=TIMEOUT)
        assert out.returncode == 0, out.stderr
        return sorted(out.stdout.splitlines())

    produce(broker, topic, 2, 3, "k1")
    assert kcat_group() == expected(2, 3, "k1")
    assert kcat_group() == []
    produce(broker, topic, 2, 1, "k2")
    assert kcat_group() == expected(2, 1, "k2")


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_kafka_python_group_consumer_and_admin(fresh_broker):
    broker = fresh_broker
    topic = create_topic(broker, 2)
    group = unique("kp")
    produce(broker, topic, 2, 3, "kp")

    def consume_all(n):
        c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=3000)
        got = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < n and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += [r.value.decode() for r in records]
        c.commit()
        c.close()
        return sorted(got)

    assert consume_all(6) == expected(2, 3, "kp")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        def committed():
            offsets = admin.list_group_offsets(group)[group]
            return {(tp.topic, tp.partition): o.offset for tp, o in offsets.items()}

        assert committed() == {(topic, 0): 3, (topic, 1): 3}
        listed = [g for g in admin.list_groups() if g["group_id"] == group]
        assert listed == [{"group_id": group, "protocol_type": "consumer", "group_state": "Empty",
                           "group_type": "classic"}]
        assert [g["group_id"] for g in admin.list_groups(states_filter=["stable"])] == []
        described = admin.describe_groups([group, "no-such-group"])
        assert described[group]["group_state"] == "Empty"
        assert described[group]["protocol_type"] == "consumer"
        assert described[group]["error"] is None
        assert "GroupIdNotFound" in described["no-such-group"]["error"]

        # Rewind partition 0 (a commit with no generation, as tools do).
        admin.alter_group_offsets(group, {KTopicPartition(topic, 0): OffsetAndMetadata(1, "", -1)})
        assert committed() == {(topic, 0): 1, (topic, 1): 3}
        assert consume_all(2) == ["kp-0-1", "kp-0-2"]

        assert dict(admin.delete_groups([group])) == {group: "OK"}
        assert group not in [g["group_id"] for g in admin.list_groups()]
        assert committed() == {}
        assert dict(admin.delete_groups([group])) == {group: "GroupIdNotFoundError"}
    finally:
        admin.close()


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_confluent_admin_describes_lists_and_deletes_groups(fresh_broker, members):
    broker = fresh_broker
    topic = create_topic(broker, 2)
    group = unique("adm")
    m = Member(broker, group, topic)
    members.append(m)
    wait_until(lambda: m.assignment() == [0, 1], timeout=TIMEOUT, what="the member to own both partitions")

    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = a.list_consumer_groups().result(TIMEOUT)
    assert [(g.group_id, g.state, g.is_simple_consumer_group) for g in listed.valid if g.group_id == group] == \
        [(group, ConsumerGroupState.STABLE, False)]
    described = a.describe_consumer_groups([group])[group].result(TIMEOUT)
    assert described.state == ConsumerGroupState.STABLE
    assert described.partition_assignor == "range"
    assert described.coordinator.port == broker.port
    (member,) = described.members
    assert member.host == "/127.0.0.1"
    assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1]

    # A group with members cannot be deleted.
    with pytest.raises(KafkaException) as e:
        a.delete_consumer_groups([group])[group].result(TIMEOUT)
    assert "NON_EMPTY_GROUP" in str(e.value) or "not empty" in str(e.value).lower()

    m.stop()
    wait_until(lambda: a.describe_consumer_groups([group])[group].result(TIMEOUT).state == ConsumerGroupState.EMPTY,
               timeout=TIMEOUT, what="the group to be empty")
    produce(broker, topic, 2, 1, "x")
    a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1),
                                                                          TopicPartition(topic, 1, 0)])])[group].result(TIMEOUT)
    offsets = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(TIMEOUT)
    assert sorted((tp.partition, tp.offset) for tp in offsets.topic_partitions) == [(0, 1), (1, 0)]
    a.delete_consumer_groups([group])[group].result(TIMEOUT)
    missing = a.describe_consumer_groups([group])[group].result(TIMEOUT)
    assert missing.state == ConsumerGroupState.DEAD
