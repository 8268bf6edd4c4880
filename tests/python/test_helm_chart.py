"""The Helm chart (charts/strom), proven without a Kubernetes cluster.

`helm template` renders the chart for three replicas; each pod's command
line, environment and ConfigMap files are taken from the rendered
StatefulSet exactly as the kubelet would resolve them (fieldRefs, $(VAR)
expansion), with only the pods' addresses substituted: pod i's IP and its
stable DNS name become 127.0.80.(i+1), and the volume's mount point a
temporary directory. Three `strom` processes started that way must form a
cluster kcat can use, with the provisioned topics, and survive a rolling
restart done the way Kubernetes does it (preStop hook, SIGTERM, start,
wait for /readyz) while an acks=all producer and a consumer group run:
no produce fails, no acknowledged record is lost, no partition drops
below min.insync.replicas, and under-replicated partitions return to 0
after each step. A pod whose volume holds another cluster's data refuses
to start. The schema rejects wrong values.

Needs helm (tests/run installs it with tests/tools/get-helm.sh).
"""

import http.client as http_client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import STROM_BIN, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "strom")
CI_VALUES = os.path.join(CHART, "ci", "provisioning-external-values.yaml")
RELEASE = "kafka"
NAMESPACE = "streaming"
HOSTS = ["127.0.80.1", "127.0.80.2", "127.0.80.3"]
EXTERNAL_PORT = 9094


def helm():
    path = (os.environ.get("HELM") or shutil.which("helm")
            or os.path.expanduser("~/.cache/chart-tools/bin/helm"))
    if not os.access(path, os.X_OK):
        raise RuntimeError("helm is required (tests/run installs it with tests/tools/get-helm.sh)")
    return path


def render(*args, release=RELEASE):
    """The chart's manifests, or the CalledProcessError of `helm template`."""
    out = subprocess.run([helm(), "template", release, CHART, "--namespace", NAMESPACE, *args],
                         check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render_error(*args):
    r = subprocess.run([helm(), "template", RELEASE, CHART, "--namespace", NAMESPACE, *args],
                       capture_output=True, text=True)
    assert r.returncode != 0, f"helm template accepted {args}"
    return r.stderr


def of_kind(manifests, kind):
    return [m for m in manifests if m["kind"] == kind]


def http(host, path, method="GET"):
    """(status, body) of a request to a pod's HTTP endpoint; (None, error)
    when it does not answer."""
    request = urllib.request.Request(f"http://{host}:9644{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def metric(host, name):
    status, body = http(host, "/metrics")
    if status != 200:
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Pod:
    """Pod `index` of the rendered StatefulSet, as a local process."""

    def __init__(self, manifests, index, workdir):
        sts = of_kind(manifests, "StatefulSet")[0]
        config_map = of_kind(manifests, "ConfigMap")[0]
        self.name = f"{sts['metadata']['name']}-{index}"
        self.ip = HOSTS[index]
        self.root = os.path.join(workdir, self.name)
        self.config_dir = os.path.join(self.root, "etc-strom")
        self.volume = os.path.join(self.root, "volume")
        os.makedirs(self.config_dir, exist_ok=True)
        os.makedirs(self.volume, exist_ok=True)
        pod_spec = sts["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        mounts = {v["name"]: v["mountPath"] for v in container["volumeMounts"]}
        self.config_mount, self.data_mount = mounts["config"], mounts["data"]
        # The pods' stable names, as the headless Service publishes them.
        names = {f"{sts['metadata']['name']}-{j}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local": host
                 for j, host in enumerate(HOSTS)}

        def localise(text):
            for name, host in names.items():
                text = text.replace(name, host)
            return text.replace(self.data_mount, self.volume)

        for key, text in config_map["data"].items():
            with open(os.path.join(self.config_dir, key), "w") as f:
                f.write(localise(text))
        fields = {"metadata.name": self.name, "metadata.namespace": NAMESPACE,
                  "status.podIP": self.ip}
        self.env = {}
        for var in container.get("env", []):
            if "valueFrom" in var:
                self.env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
            else:
                self.env[var["name"]] = self.expand(var["value"])
        self.args = [self.expand(a).replace(self.config_mount, self.config_dir)
                     for a in container["args"]]
        self.pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        self.grace_seconds = pod_spec["terminationGracePeriodSeconds"]
        self.log_path = os.path.join(self.root, "strom.log")
        self.proc = None

    def expand(self, text):
        """Kubernetes' $(VAR) expansion from the variables defined so far."""
        return re.sub(r"\$\((\w+)\)", lambda m: self.env.get(m.group(1), m.group(0)), text)

    def process_env(self):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env}

    def binary(self, command):
        assert command[0] == "/usr/local/bin/strom", command
        return [STROM_BIN, *command[1:]]

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([STROM_BIN, *self.args], env=self.process_env(),
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        return http(self.ip, "/readyz")[0] == 200

    def stop_like_kubernetes(self):
        """preStop hook, then SIGTERM, within the grace period."""
        started = time.monotonic()
        hook = subprocess.run(self.binary(self.pre_stop), env=self.process_env(),
                              capture_output=True, text=True, timeout=self.grace_seconds)
        assert hook.returncode == 0, f"preStop failed: {hook.stderr}\n{self.log()}"
        assert http(self.ip, "/readyz")[0] == 503
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=max(1, self.grace_seconds - (time.monotonic() - started)))
        assert code == 0, self.log()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-20000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def pods():
    manifests = render("-f", CI_VALUES, "--set", "replicaCount=3",
                       "--set-json", f"externalAccess.hosts={json.dumps(HOSTS)}",
                       "--set", f"externalAccess.port={EXTERNAL_PORT}")
    workdir = tempfile.mkdtemp(prefix="strom-chart-")
    pods = [Pod(manifests, i, workdir) for i in range(3)]
    for p in pods:
        p.start()
    try:
        for p in pods:
            wait_until(p.ready, timeout=90, what=f"{p.name} to be ready")
        yield pods
    except BaseException:
        for p in pods:
            print(f"--- {p.name} ---\n{p.log()[-5000:]}")
        raise
    finally:
        for p in pods:
            p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def bootstrap(port=9092):
    return ",".join(f"{h}:{port}" for h in HOSTS)


def kcat(*args, input=None):
    r = subprocess.run(["kcat", *args], input=input, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_schema_rejects_wrong_values_and_the_cluster_id_is_stable():
    assert "replicaCount" in render_error("--set", "replicaCount=three")
    assert "logFormat" in render_error("--set", "logFormat=xml")
    assert "clusterId" in render_error("--set", "clusterId=not-22-characters")
    assert "externalAccess.hosts must name an address for each of the 3 brokers" in render_error(
        "--set", "externalAccess.enabled=true", "--set-json", 'externalAccess.hosts=["a"]')

    def cluster_id(manifests):
        data = of_kind(manifests, "ConfigMap")[0]["data"]
        text = next(v for k, v in data.items() if k.endswith("-0.properties"))
        return re.search(r"^cluster\.id=(\S+)$", text, re.M).group(1)

    first = cluster_id(render())
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first)
    assert cluster_id(render("--set", "replicaCount=5")) == first
    assert cluster_id(render(release="other")) != first
    # Pods 0-2 vote; the others are brokers only.
    five = of_kind(render("--set", "replicaCount=5"), "ConfigMap")[0]["data"]
    assert "process.roles=broker,controller" in five[f"{RELEASE}-strom-2.properties"]
    assert "process.roles=broker\n" in five[f"{RELEASE}-strom-3.properties"]


def test_the_rendered_chart_forms_a_cluster_kcat_can_use(pods):
    listing = kcat("-b", bootstrap(), "-L", "-J")
    metadata = json.loads(listing)
    assert sorted((b["id"], b["name"]) for b in metadata["brokers"]) == [
        (i, f"{h}:9092") for i, h in enumerate(HOSTS)]
    # The external listener advertises the external addresses.
    external = json.loads(kcat("-b", f"{HOSTS[0]}:{EXTERNAL_PORT}", "-L", "-J"))
    assert sorted(b["name"] for b in external["brokers"]) == [f"{h}:{EXTERNAL_PORT}" for h in HOSTS]

    # Provisioned at start-up, with their configs.
    def provisioned():
        topics = {t["topic"]: t for t in json.loads(kcat("-b", bootstrap(), "-L", "-J"))["topics"]}
        return "orders" in topics and len(topics["orders"]["partitions"]) == 6 and "audit" in topics

    wait_until(provisioned, timeout=30, what="the provisioned topics")
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "orders")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["max.message.bytes"].value == "2097152"
    assert configs["flush.messages"].value == "1"

    lines = [f"message {i}" for i in range(50)]
    kcat("-b", bootstrap(), "-P", "-t", "orders", "-p", "0", "-X", "acks=all", input="\n".join(lines) + "\n")
    consumed = kcat("-b", bootstrap(), "-C", "-t", "orders", "-p", "0", "-o", "beginning", "-e", "-q")
    assert consumed.splitlines() == lines
    assert sum(metric(p.ip, "strom_controller_active") for p in pods) == 1
    with open(os.path.join(pods[0].config_dir, f"{pods[0].name}.properties")) as f:
        assert "log.segment.bytes=1073741824\n" in f.read()

    # A controlled shutdown is asked for from the pod itself, not another.
    other = http_client.HTTPConnection(pods[0].ip, 9644, timeout=10, source_address=(pods[1].ip, 0))
    other.request("POST", "/controlled-shutdown")
    assert other.getresponse().status == 403
    other.close()
    assert http(pods[0].ip, "/readyz")[0] == 200


def isr_view(pod, topic):
    """Each partition's ISR as `pod` itself answers Metadata."""
    listing = json.loads(kcat("-b", f"{pod.ip}:9092", "-L", "-J", "-t", topic))
    return {p["partition"]: sorted(r["id"] for r in p["isrs"]) for t in listing["topics"]
            for p in t["partitions"]}


def test_a_rolling_restart_loses_no_acknowledged_record(pods):
    topic = "rolling"
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3,
                                  config={"min.insync.replicas": "2"})])[topic].result(timeout=30)
    wait_until(lambda: sum(metric(p.ip, "strom_under_replicated_partitions") or 0 for p in pods) == 0
               and all(metric(p.ip, "strom_under_replicated_partitions") is not None for p in pods),
               timeout=30, what="every replica in sync")

    acked, failures, stop = [], [], threading.Event()
    producer = Producer({"bootstrap.servers": bootstrap(), "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 120000})

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))
        else:
            acked.append(int(msg.value()))

    def produce():
        n = 0
        while not stop.is_set():
            try:
                producer.produce(topic, str(n).encode(), key=str(n % 7).encode(), on_delivery=on_delivery)
                n += 1
            except BufferError:
                pass
            producer.poll(0.002)
        producer.flush(120)
        produced_all.set()

    consumed = set()
    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": "rolling-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    consumer.subscribe([topic])

    produced_all = threading.Event()

    def consume():
        # Until the producer has flushed and every acknowledged record was
        # seen, or a minute after it flushed.
        deadline = None
        while not produced_all.is_set() or len(consumed) < len(set(acked)):
            m = consumer.poll(0.2)
            if m is not None and m.error() is None:
                consumed.add(int(m.value()))
            if produced_all.is_set():
                deadline = deadline or time.monotonic() + 60
                if time.monotonic() > deadline:
                    break

    # Never below min.insync.replicas, seen from any live pod, at any time.
    below_min_isr = []

    def watch_min_isr():
        while not stop.is_set():
            for p in pods:
                v = metric(p.ip, "strom_under_min_isr_partitions")
                if v:
                    below_min_isr.append((p.name, v))
            time.sleep(0.1)

    threads = [threading.Thread(target=f, daemon=True) for f in (produce, consume, watch_min_isr)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) > 200, timeout=30, what="records acknowledged before the restart")

    # Kubernetes updates a StatefulSet from the highest ordinal down.
    for pod in reversed(pods):
        before = len(acked)
        pod.stop_like_kubernetes()
        pod.start()
        wait_until(pod.ready, timeout=120, what=f"{pod.name} ready again")
        # Ready means back in every ISR, at the moment it turned ready.
        node_id = pods.index(pod)
        isrs = isr_view(pod, topic)
        assert len(isrs) == 3 and all(node_id in isr for isr in isrs.values()), isrs
        wait_until(lambda: sum(metric(p.ip, "strom_under_replicated_partitions") or 0 for p in pods) == 0,
                   timeout=60, what=f"no under-replicated partitions after restarting {pod.name}")
        wait_until(lambda: len(acked) > before + 100, timeout=60,
                   what=f"records acknowledged after restarting {pod.name}")

    stop.set()
    for t in threads:
        t.join(timeout=200)
    consumer.close()
    print(f"acknowledged {len(acked)} records, consumed {len(consumed)}")
    assert not failures, failures[:5]
    assert not below_min_isr, below_min_isr[:5]
    missing = set(acked) - consumed
    assert not missing, f"{len(missing)} acknowledged records never consumed, e.g. {sorted(missing)[:10]}"

    # Read everything back: every acknowledged record is in the log once.
    reader = Consumer({"bootstrap.servers": bootstrap(), "group.id": "rolling-check",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.assign([TopicPartition(topic, p, 0) for p in range(3)])
    stored, idle_since = [], time.monotonic()
    while time.monotonic() - idle_since < 5:
        m = reader.poll(0.5)
        if m is not None and m.error() is None:
            stored.append(int(m.value()))
            idle_since = time.monotonic()
    reader.close()
    assert set(acked) <= set(stored)
    assert len(stored) == len(set(stored)), "a record was stored twice"


def test_a_volume_of_another_cluster_is_refused(pods):
    pod = pods[0]
    pod.stop_like_kubernetes()
    other = render("-f", CI_VALUES, "--set", "clusterId=AAAAAAAAAAAAAAAAAAAAAA",
                   "--set-json", f"externalAccess.hosts={json.dumps(HOSTS)}")
    stranger = Pod(other, 0, os.path.dirname(pod.root) + "-other")
    stranger.volume = pod.volume
    # Same volume, the other release's configuration.
    for key in os.listdir(stranger.config_dir):
        path = os.path.join(stranger.config_dir, key)
        with open(path) as f:
            text = f.read().replace(stranger.root + "/volume", pod.volume)
        with open(path, "w") as f:
            f.write(text)
    stranger.start()
    code = stranger.proc.wait(timeout=60)
    assert code != 0
    log = stranger.log()
    assert "belong to cluster" in log and "AAAAAAAAAAAAAAAAAAAAAA" in log, log
    shutil.rmtree(os.path.dirname(stranger.root), ignore_errors=True)
    pod.start()
    wait_until(pod.ready, timeout=120, what=f"{pod.name} ready again")
