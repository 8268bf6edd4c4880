"""One consumer group member in its own process, so tests can kill it the
way a crash would. Subscribes with confluent-kafka and reports on stdout,
one JSON object per line:

  {"event": "assigned", "partitions": [...]}   after every rebalance
  {"event": "record", "partition": p, "offset": o, "value": "..."}

Each record's offset is committed synchronously before it is reported, so
whatever was reported is committed. Runs until killed or SIGTERM (then it
closes the consumer, which leaves the group)."""

import argparse
import json
import signal
import sys

from confluent_kafka import Consumer, KafkaError


def report(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--instance-id")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--strategy", default="range")
    args = parser.parse_args()
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": args.strategy,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    consumer = Consumer(conf)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def on_assign(c, partitions):
        report(event="assigned", partitions=sorted(p.partition for p in c.assignment() + partitions))

    def on_revoke(c, partitions):
        gone = {p.partition for p in partitions}
        report(event="assigned", partitions=sorted(p.partition for p in c.assignment() if p.partition not in gone))

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    while not stopping:
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                report(event="error", error=str(m.error()))
            continue
        consumer.commit(message=m, asynchronous=False)
        report(event="record", partition=m.partition(), offset=m.offset(), value=m.value().decode())
    consumer.close()


if __name__ == "__main__":
    main()
