#!/usr/bin/env python3
"""Benchmark driver: kube-elector beside its peers, measured in one run.

Every implementation runs as separate processes that speak the line protocol
of bench/protocol.rs (client-go through interop/cmd/client-go-elector), against
one embedded Lease API server process (the lease-apiserver example of the
kube-elector-testing crate), whose /_testing endpoint injects faults and
counts requests per client; or, with --real-kubeconfig, against a real
kube-apiserver (no faults: graceful handover, crash takeover and API load,
counted from its /metrics). Prints a markdown table, then the same figures
as `figure,implementation,value,unit` lines. Figures, not asserts: nothing
here fails on a slow number.

Usage: bench.py (--server BIN | --real-kubeconfig FILE) --impl NAME=BIN [--impl ...]
                [--quick | --smoke] [--seed N] [--only partition|rolling|herd|many|peers|directed|sharding]
                [--rtt-binary BIN] [--timeline FILE.json]
                [--lease-duration-ms N --renew-deadline-ms N --retry-period-ms N]

The `rolling` scenario is a check, not a figure: it exits 1 if two electors
led at once or a leader failed to return in time (see rolling()). --smoke
runs every scenario once at the smallest sizes and exits 1 if anything
broke (a scenario raised or took no sample, a process died, a line broke
the line protocol); other runs list those failures but exit 0.
"""

import argparse
import base64
import json
import os
import queue
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import ssl
import threading
import time
import traceback
import urllib.request

LEASE_MS, RENEW_MS, RETRY_MS = 2000, 1000, 500
PATIENCE = 30.0


def now_ns():
    return time.time_ns()


def process_log(lease, identity):
    """Where an elector process's stderr goes: a file in $BENCH_LOG_DIR
    (with RUST_LOG set, kube-elector's processes log there), else nowhere."""
    directory = os.environ.get("BENCH_LOG_DIR")
    if not directory:
        return subprocess.DEVNULL
    os.makedirs(directory, exist_ok=True)
    return open(os.path.join(directory, f"{lease}-{identity}.log"), "a")


# === What broke ===
#
# A scenario that raised, a process that died or exited badly, a line that
# breaks the line protocol, a scenario that took no sample: each is printed
# at once and listed at the end of every run; with --smoke any of them makes
# the run exit 1. Slow figures are never a failure.

FAILURES = []
_failures_lock = threading.Lock()


def failed(what):
    with _failures_lock:
        FAILURES.append(what)
    print(f"# FAILED: {what}", file=sys.stderr, flush=True)


def sampled(what, values):
    """`values` (the samples of a scenario), or [] after reporting that it
    took none (None: the scenario raised, which is reported already)."""
    if values is None:
        return []
    if not values:
        failed(f"{what}: no sample")
    return values


class LineCheck:
    """The line protocol of interop/README.md, checked line by line for one
    elector process: JSON objects with `ts_unix_nanos`, `impl`, `identity`
    (its own), `event` and `leader`; `ready` first and once; a
    `started_leading` (leader: itself) closed by at most one
    `stopped_leading`, never one without it; nothing after `exited`. With
    `shards`, the `shard_acquired` / `shard_released` lines of the sharding
    modes too (a `shard` below `shards`, released only when acquired)."""

    FIELDS = (("ts_unix_nanos", int), ("impl", str), ("identity", str), ("event", str), ("leader", str))

    def __init__(self, identity, label, shards=None):
        self.identity, self.label, self.shards = identity, label, shards
        self.ready = self.leading = self.exited = False
        self.owned = set()

    def bad(self, what):
        failed(f"{self.label}: line protocol: {what}")

    def check(self, line):
        """The event of `line`, or None if it is not a protocol object (a
        violation is reported; an object that breaks a rule is still
        returned, for the figures)."""
        try:
            event = json.loads(line)
        except ValueError:
            self.bad(f"not JSON: {line.rstrip()!r}")
            return None
        missing = [f for f, kind in self.FIELDS if not isinstance(event, dict) or not isinstance(event.get(f), kind)]
        if missing:
            self.bad(f"{', '.join(missing)} missing or mistyped: {line.rstrip()!r}")
            return None
        kind = event["event"]
        if event["identity"] != self.identity:
            self.bad(f"identity {event['identity']!r} in {kind}")
        if self.exited:
            self.bad(f"{kind} after exited")
        if kind != "ready" and not self.ready:
            self.bad(f"{kind} before ready")
        if kind == "ready":
            if self.ready:
                self.bad("a second ready")
            self.ready = True
        elif kind == "started_leading":
            if self.leading:
                self.bad("started_leading twice without stopped_leading")
            if event["leader"] != self.identity:
                self.bad(f"started_leading with leader {event['leader']!r}")
            self.leading = True
        elif kind == "stopped_leading":
            if not self.leading:
                self.bad("stopped_leading without started_leading")
            self.leading = False
        elif kind == "exited":
            self.exited = True
            if self.owned:
                self.bad(f"exited owning shards {sorted(self.owned)}")
        elif kind in ("shard_acquired", "shard_released") and self.shards is not None:
            shard = event.get("shard")
            if not isinstance(shard, int) or not 0 <= shard < self.shards:
                self.bad(f"{kind} of shard {shard!r} (of {self.shards})")
                return None
            if kind == "shard_acquired":
                if shard in self.owned:
                    self.bad(f"shard_acquired of shard {shard} twice without shard_released")
                self.owned.add(shard)
            else:
                if shard not in self.owned:
                    self.bad(f"shard_released of shard {shard} without shard_acquired")
                self.owned.discard(shard)
        elif kind not in ("new_leader", "reconciled", "synced"):
            self.bad(f"unknown event {kind!r}")
        return event


def stop_process(identity, proc, reader, check, stopping, patience=15):
    """SIGTERMs an elector process once it has said `ready` (a process
    signalled before it could handle the signal would just die), and reaps
    it. The protocol asks for `exited` as its last line and exit status 0
    within `patience` seconds. One that exited before is left to
    `watch_exit`, which reports it."""
    deadline = time.time() + PATIENCE
    while not check.ready and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        reader.join(timeout=5)
        return
    if not check.ready:
        failed(f"{check.label}: no ready line within {PATIENCE:.0f} s")
    stopping.add(identity)
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=patience)
    except subprocess.TimeoutExpired:
        failed(f"{check.label}: still running {patience} s after SIGTERM; killed")
        proc.kill()
        proc.wait()
        status = None
    reader.join(timeout=5)  # its last lines are in the log
    if status is not None:
        if status != 0:
            failed(f"{check.label}: exit status {status} after SIGTERM")
        elif not reader.is_alive() and not check.exited:
            failed(f"{check.label}: no exited line after SIGTERM")


def watch_exit(identity, proc, stopping, label):
    """Called when a process's stdout ends: a failure unless the harness
    signalled it (its identity in `stopping`)."""
    status = proc.wait()
    if identity not in stopping:
        failed(f"{label}: exited on its own (status {status}){log_hint()}")


def log_hint():
    return "" if os.environ.get("BENCH_LOG_DIR") else " (BENCH_LOG_DIR=DIR keeps its stderr)"


class Server:
    real = False

    def __init__(self, binary, workdir):
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--kubeconfig", os.path.join(workdir, "admin.kubeconfig")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("port: "):
                self.port = int(line.split()[1])
                break
        if self.port is None:
            raise SystemExit("the lease-apiserver did not start")
        self.url = f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, identity):
        path = os.path.join(self.workdir, f"{identity}.kubeconfig")
        with open(path, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: embedded
  cluster:
    server: {self.url}
contexts:
- name: embedded
  context:
    cluster: embedded
    user: {identity}
    namespace: default
current-context: embedded
users:
- name: {identity}
  user:
    token: {identity}
    as: {identity}
""")
        return path

    def admin(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_testing" + path, data=data,
                                     method="POST" if body is not None else "GET",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def faults(self, **spec):
        self.admin("/faults", spec)

    def requests(self):
        return self.admin("/requests")

    def lease(self, name):
        req = urllib.request.Request(
            f"{self.url}/apis/coordination.k8s.io/v1/namespaces/default/leases/{name}",
            headers={"authorization": "Bearer bench-driver"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class RealServer:
    """A real kube-apiserver named by the admin kubeconfig that
    interop/cmd/apiserver writes (server, CA data, bearer token): every
    process gets that kubeconfig (their identities are their own); requests
    are counted from the apiserver's /metrics. No fault injection."""

    real = True

    def __init__(self, kubeconfig_path):
        self.path = kubeconfig_path
        text = open(kubeconfig_path).read()

        def field(name):
            m = re.search(rf"^\s*{name}:\s*(\S+)\s*$", text, re.M)
            return m.group(1).strip("\"'") if m else None
        self.url = field("server").rstrip("/")
        self.token = field("token")
        ca = field("certificate-authority-data")
        if ca:
            self.tls = ssl.create_default_context(cadata=base64.b64decode(ca).decode())
        elif field("insecure-skip-tls-verify") == "true":
            self.tls = ssl._create_unverified_context()  # noqa: S323 - the apiserver said so
        else:
            self.tls = ssl.create_default_context()

    def kubeconfig(self, identity):
        return self.path

    def _get(self, path):
        req = urllib.request.Request(self.url + path, headers={"authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10, context=self.tls) as r:
            return r.read().decode()

    def lease(self, name):
        return json.loads(self._get(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{name}"))

    def lease_requests(self):
        """Lease requests the apiserver has completed so far, all clients
        and namespaces (apiserver_request_total, group coordination.k8s.io,
        resource leases, every verb; a watch counts when it ends)."""
        total = 0.0
        for line in self._get("/metrics").splitlines():
            if line.startswith("apiserver_request_total{") and 'resource="leases"' in line \
                    and 'group="coordination.k8s.io"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self):
        pass


class Group:
    """The elector processes on one Lease (of one implementation, unless
    `spawn` names another), and a record of who led when (wall clock,
    nanoseconds)."""

    def __init__(self, server, impl, binary, lease):
        self.server, self.impl, self.binary, self.lease = server, impl, binary, lease
        self.procs = {}
        self.readers = {}  # identity -> the thread reading its stdout
        self.impl_of = {}  # identity -> implementation name
        self.events = queue.Queue()
        self.terms = []  # [identity, start_ns, end_ns or None]
        self.observed = {}  # identity -> the leader of its last new_leader event
        self.ready = set()
        self.log = []  # (identity, event line as printed)
        self.lock = threading.Lock()
        self.counter = 0
        self.checks = {}  # identity -> its LineCheck
        self.stopping = set()  # identities the harness signalled

    def spawn(self, impl=None, binary=None, extra=()):
        impl, binary = impl or self.impl, binary or self.binary
        self.counter += 1
        identity = f"{impl}-{self.counter}"
        args = [*shlex.split(binary), "--kubeconfig", self.server.kubeconfig(identity),
                "--namespace", "default", "--lease-name", self.lease, "--identity", identity,
                "--lease-duration-ms", str(LEASE_MS), "--renew-deadline-ms", str(RENEW_MS),
                "--retry-period-ms", str(RETRY_MS), *extra]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=process_log(self.lease, identity),
                                text=True)
        self.procs[identity] = proc
        self.impl_of[identity] = impl
        self.checks[identity] = LineCheck(identity, label=f"{self.lease}: {identity}")
        reader = threading.Thread(target=self._read, args=(identity, proc), daemon=True)
        self.readers[identity] = reader
        reader.start()
        return identity

    def _read(self, identity, proc):
        for line in proc.stdout:
            event = self.checks[identity].check(line)
            if event is None:
                continue
            with self.lock:
                self.log.append((identity, line.rstrip("\n")))
                if event["event"] == "started_leading":
                    self.terms.append([identity, event["ts_unix_nanos"], None])
                elif event["event"] in ("stopped_leading", "exited"):
                    self._end(identity, event["ts_unix_nanos"])
                elif event["event"] == "new_leader":
                    self.observed[identity] = event["leader"]
                elif event["event"] == "ready":
                    self.ready.add(identity)
            self.events.put((identity, event))
        watch_exit(identity, proc, self.stopping, self.checks[identity].label)

    def _end(self, identity, ts):
        for term in reversed(self.terms):
            if term[0] == identity and term[2] is None:
                term[2] = ts
                return

    def leader(self):
        with self.lock:
            open_terms = [t[0] for t in self.terms if t[2] is None]
        return open_terms[-1] if open_terms else None

    def wait_started(self, after_ns, not_identity=None, timeout=PATIENCE):
        """The (identity, ts) of the first start after `after_ns` by someone else."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for who, start, _ in self.terms:
                    if start >= after_ns and who != not_identity:
                        return who, start
            time.sleep(0.005)
        return None, None

    def wait_leader(self, timeout=PATIENCE):
        deadline = time.time() + timeout
        while time.time() < deadline:
            who = self.leader()
            if who:
                return who
            time.sleep(0.01)
        return None

    def terminate(self, identity):
        """SIGTERM: the elector's term ends now, whatever it prints later."""
        with self.lock:
            self._end(identity, now_ns())
        proc = self.procs.pop(identity)
        stop_process(identity, proc, self.readers[identity], self.checks[identity], self.stopping)

    def kill(self, identity):
        proc = self.procs.pop(identity)
        self.stopping.add(identity)
        proc.kill()
        proc.wait()
        with self.lock:
            self._end(identity, now_ns())

    def stop_all(self):
        for identity in list(self.procs):
            self.terminate(identity)

    def overlap_seconds(self, until_ns):
        """Total time during which two or more electors believed they led."""
        with self.lock:
            return overlap_seconds(self.terms, until_ns)


def overlap_seconds(terms, until_ns):
    """Total time covered by two or more of `terms` ([identity, start_ns,
    end_ns or None (still open at until_ns)])."""
    edges = []
    for _, start, end in terms:
        edges.append((start, 1))
        edges.append((end if end is not None else until_ns, -1))
    edges.sort()
    depth, total, since = 0, 0, None
    for ts, delta in edges:
        if depth >= 2 and since is not None:
            total += ts - since
        depth += delta
        since = ts
    return total / 1e9


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


# === Scenarios ===

def into_term(rng):
    """How long after a term started its leader is stopped: at least 0.3 s
    (followers have observed the leader), then at a point drawn uniformly
    over one lease duration, so the signal falls at every phase of a
    renew or poll cycle, as a real shutdown does. Drawn from a generator
    seeded alike for every implementation: the same points for all. A
    fixed point would be phase-locked with implementations whose followers
    sleep from the start of a term (kube-lease-manager's sleep until the
    expiry they saw then): always the same, least favourable, moment."""
    return 0.3 + rng.uniform(0, LEASE_MS / 1000)


def graceful(server, impl, binary, rounds, seed=7):
    g = Group(server, impl, binary, f"graceful-{impl}")
    rng = random.Random(seed)
    for _ in range(3):
        g.spawn()
    times = []
    for _ in range(rounds):
        leader = g.wait_leader()
        if leader is None:
            break
        time.sleep(into_term(rng))
        t0 = now_ns()
        g.terminate(leader)
        who, ts = g.wait_started(t0, not_identity=leader)
        if who is None:
            break
        times.append((ts - t0) / 1e6)
        g.spawn()
    g.stop_all()
    return times


def directed(server, binary, rounds, seed=7):
    """kube-elector's directed handover (ElectorHandle::hand_over to a named
    identity), asked by SIGUSR1 at the same seeded points of the term as the
    graceful handover: ms from the signal to the named successor's start,
    and how many rounds someone else took the Lease instead."""
    g = Group(server, "kube-elector", binary, "directed-kube-elector")
    rng = random.Random(seed)
    fd, path = tempfile.mkstemp(prefix="handover-")
    os.close(fd)
    for _ in range(3):
        g.spawn(extra=["--handover-file", path])
    times, others = [], 0
    try:
        for _ in range(rounds):
            leader = g.wait_leader()
            if leader is None:
                break
            time.sleep(into_term(rng))
            successor = next(i for i in sorted(g.procs) if i != leader)
            with open(path, "w") as f:
                f.write(successor)
            t0 = now_ns()
            g.procs[leader].send_signal(signal.SIGUSR1)
            who, ts = g.wait_started(t0, not_identity=leader)
            if who is None:
                break
            if who != successor:
                others += 1
            times.append((ts - t0) / 1e6)
    finally:
        g.stop_all()
        os.unlink(path)
    return times, others


def crash(server, impl, binary, rounds, seed=7):
    g = Group(server, impl, binary, f"crash-{impl}")
    rng = random.Random(seed)
    for _ in range(3):
        g.spawn()
    after_renew = []
    for _ in range(rounds):
        leader = g.wait_leader()
        if leader is None:
            break
        time.sleep(into_term(rng))
        g.kill(leader)
        kill_ns = now_ns()
        renew = server.lease(g.lease)["spec"].get("renewTime")
        who, ts = g.wait_started(kill_ns, not_identity=leader, timeout=PATIENCE)
        if who is None:
            break
        last_renew_ns = parse_micro_time(renew) if renew else kill_ns
        after_renew.append((ts - last_renew_ns) / 1e6)
        g.spawn()
    g.stop_all()
    return after_renew


def parse_micro_time(s):
    # "2026-11-24T14:00:00.123456Z"
    import datetime
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def api_load(server, impl, binary, window):
    g = Group(server, impl, binary, f"load-{impl}")
    for _ in range(10):
        g.spawn()
    leader = g.wait_leader()
    time.sleep(LEASE_MS / 1000 * 2)
    leader = g.leader()
    mine = set(g.procs)
    before = server.requests()["requests"]
    time.sleep(window)
    after = server.requests()["requests"]
    g.stop_all()

    def count(rows, who=None):
        return sum(r["count"] for r in rows if r["client"] in mine and (who is None or who(r["client"])))
    total = (count(after) - count(before)) / window
    followers = (count(after, lambda c: c != leader) - count(before, lambda c: c != leader)) / window
    return total, followers


def api_load_real(server, impl, binary, window, baseline):
    """API load on a real kube-apiserver, from its request counter (which
    does not say who sent what): the rate with 1 leader + 9 followers, then
    with the leader alone after the followers stopped, each minus the
    apiserver's own Lease traffic (`baseline`, measured with no elector
    running). Returns (total, followers, leader) in requests per second."""
    g = Group(server, impl, binary, f"load-{impl}-{now_ns() % 10**6}")
    for _ in range(10):
        g.spawn()
    g.wait_leader()
    time.sleep(LEASE_MS / 1000 * 2)
    leader = g.leader()
    before = server.lease_requests()
    time.sleep(window)
    group = (server.lease_requests() - before) / window
    for identity in list(g.procs):
        if identity != leader:
            g.terminate(identity)
    time.sleep(LEASE_MS / 1000)  # the followers' last requests have completed
    before = server.lease_requests()
    time.sleep(window)
    alone = (server.lease_requests() - before) / window
    g.stop_all()
    return group - baseline, group - alone, alone - baseline


def baseline_load(server, window):
    """Lease requests per second the apiserver sees with no elector running
    (its own identity Leases)."""
    before = server.lease_requests()
    time.sleep(window)
    return (server.lease_requests() - before) / window


def rtt(server, binary, samples):
    """One GET of a Lease, then one PUT that changes it, as kube-rs's client
    sends them, and a PUT until a watch of the Lease delivers it, timed by
    bench-kube-elector --rtt: (GET median, GET p99, PUT median, PUT p99,
    PUT-to-watch median), back to back, then (GET, PUT, PUT-to-watch)
    medians after 300 ms pauses, in milliseconds."""
    out = subprocess.run(
        [binary, "--kubeconfig", server.kubeconfig("rtt-probe"), "--namespace", "default",
         "--lease-name", "rtt-probe", "--identity", "rtt-probe", "--rtt", str(samples)],
        capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"the rtt probe exited with status {out.returncode}: {out.stderr[-500:]}")
    for line in out.stdout.splitlines():
        if '"rtt"' in line:
            row = json.loads(line)
            print(f"# {line}", file=sys.stderr, flush=True)
            return (row["median_ms"], row["p99_ms"], row.get("put_median_ms"), row.get("put_p99_ms"),
                    row.get("put_seen_median_ms"), row.get("idle_get_median_ms"),
                    row.get("idle_put_median_ms"), row.get("idle_put_seen_median_ms"))
    raise RuntimeError(f"no rtt line: {out.stderr[-500:]}")


def chaos(server, impl, binary, seconds, seed):
    """The same seeded fault schedule for every implementation."""
    rng = random.Random(seed)
    g = Group(server, impl, binary, f"chaos-{impl}")
    for _ in range(5):
        g.spawn()
    g.wait_leader()
    end = time.time() + seconds
    while time.time() < end:
        action = rng.choice(["partition-leader", "latency", "errors", "hang-one"])
        hold = rng.uniform(1.0, 3.0)
        leader = g.leader()
        target = "all"
        if action == "partition-leader" and leader:
            target = leader
            server.faults(target=target, partition=True)
        elif action == "latency":
            server.faults(target=target, latency_ms=rng.choice([100, 300, 600]))
        elif action == "errors":
            server.faults(target=target, error_rate=0.5)
        elif action == "hang-one":
            target = rng.choice(sorted(g.procs))
            server.faults(target=target, hang=True)
        time.sleep(hold)
        server.faults(clear=True)
        time.sleep(rng.uniform(0.5, 2.0))
    g.wait_leader(timeout=LEASE_MS / 1000 * 3)
    until = now_ns()
    g.stop_all()
    return g.overlap_seconds(until)


def partition(server, impl, binary, rounds, stop_patience=PATIENCE):
    """The leader is partitioned from the API server (its requests hang): when
    does it say it stopped, and when does another start, both counted from
    the partition? margin = next start - stop; negative is an overlap. A
    leader that has not said it stopped `stop_patience` s after the
    partition never will (the Rust peers): the scenario ends there."""
    g = Group(server, impl, binary, f"partition-{impl}")
    begin = now_ns()
    for _ in range(3):
        g.spawn()
    rows = []
    faults = []  # (identity, from ns, to ns): partitioned
    for _ in range(rounds):
        leader = g.wait_leader()
        if leader is None:
            failed(f"partition {impl}: no leader within {PATIENCE:.0f} s")
            break
        time.sleep(0.7)  # a renew or so after the term started
        t0 = now_ns()
        server.faults(target=leader, partition=True)
        who, started = g.wait_started(t0, not_identity=leader)
        stopped = None
        deadline = time.time() + stop_patience
        while stopped is None and time.time() < deadline:
            # The end of the term the partition cut: the leader's latest
            # term that started before it (not an earlier term of the same
            # process, which ended long before: that would hide an overlap).
            with g.lock:
                cut = max((t for t in g.terms if t[0] == leader and t[1] < t0), key=lambda t: t[1], default=None)
            stopped = cut[2] if cut else None
            if stopped is None:
                time.sleep(0.005)
        server.faults(clear=True)
        faults.append((leader, t0, now_ns()))
        if who is None:
            failed(f"partition {impl}: nobody else led within {PATIENCE:.0f} s of the partition")
            break
        if stopped is None:
            # A figure, not a failure: an elector without a renew deadline
            # (both Rust peers) keeps saying it leads while partitioned.
            print(f"# partition {impl}: {leader} still said it led {stop_patience:.0f} s after the partition",
                  file=sys.stderr, flush=True)
            break
        rows.append(((stopped - t0) / 1e6, (started - t0) / 1e6, (started - stopped) / 1e6))
        time.sleep(LEASE_MS / 1000)  # the healed process settles as a follower
    end = now_ns()
    with g.lock:
        terms = [list(t) for t in g.terms]
    g.stop_all()
    timeline = {"implementation": impl, "begin_ns": begin, "end_ns": end,
                "electors": list(g.impl_of), "terms": terms,
                "faults": [{"identity": w, "from_ns": a, "to_ns": b, "kind": "partition"} for w, a, b in faults],
                "rows": rows}
    return rows, timeline


def rolling_participants(impls):
    """The implementations a rollout mixes on one Lease: every build of this
    crate (`kube-elector`, `kube-elector-old`, ...) and client-go with
    ReleaseOnCancel. The peers keep their own Lease conventions and are left
    out."""
    return {n: b for n, b in impls.items() if n.startswith("kube-elector") or n == "client-go"}


def rolling(server, impls, rounds, seed):
    """A rolling upgrade on ONE Lease: two replicas of each kube-elector build
    and one client-go elector; each round the leader leads for one to two
    lease durations, then gets SIGTERM (a graceful handover) or SIGKILL (a
    crash), and a replica of an implementation drawn from the seed replaces
    it. Fails if two electors ever led at the same instant (`overlap_seconds`
    over the terms of all processes), or if no leader started within the
    bound after the leader went. Returns (passed, summary lines).

    A SIGTERMed leader's term ends at the signal, as the line protocol
    promises (and `Group.terminate` counts it); when its own stopped_leading
    line comes later than that, and even after the next leader started, the
    lag is reported beside the verdict, with the overlap those lines would
    give."""
    rng = random.Random(seed)
    names = sorted(impls)  # a fixed order: the seed alone decides
    # A follower sees the last renew up to one retry period after it was
    # written and the expiry up to one more after the lease duration;
    # client-go jitters its retry period by up to 2.2x: 4.4 retry periods,
    # rounded up to 5 for request latency.
    bound_ns = (LEASE_MS + 5 * RETRY_MS) * 1_000_000
    kinds = (["term", "kill"] * rounds)[:rounds]
    rng.shuffle(kinds)
    schedule = [(kind, rng.choice(names), rng.uniform(1.0, 2.0)) for kind in kinds]
    initial = [n for n in names for _ in range(1 if n == "client-go" else 2)]
    rng.shuffle(initial)
    print(f"# rolling: seed {seed}; start {', '.join(initial)}; rounds "
          + ", ".join(f"{'SIGTERM' if k == 'term' else 'SIGKILL'} after {h:.1f} lease durations -> {r}"
                      for k, r, h in schedule), file=sys.stderr, flush=True)

    g = Group(server, None, None, "rolling")
    failures = []
    signalled = []  # (identity, ns): leaders sent SIGTERM

    def wait_for(what, ok, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ok():
                return True
            time.sleep(0.01)
        failures.append(f"{what} within {timeout:.1f} s")
        return False

    def settle(leader):
        # Every replica has observed the leader (a note, not a failure: the
        # check is about who leads, and the terms say that).
        deadline = time.time() + bound_ns / 1e9
        while time.time() < deadline:
            with g.lock:
                behind = [i for i in g.procs if i != leader and g.observed.get(i) != leader]
            if not behind:
                return
            time.sleep(0.01)
        print(f"# rolling: {', '.join(behind)} did not report {leader} as leader", file=sys.stderr)

    def spawn(name):
        identity = g.spawn(name, impls[name])
        wait_for(f"{identity} ready", lambda: identity in g.ready, PATIENCE)
        return identity

    def sigterm(identity):
        if identity == g.leader():
            signalled.append((identity, now_ns()))
        g.terminate(identity)

    rows = []  # (kind, leader, next leader, ms from the signal to its start)
    try:
        for name in initial:
            spawn(name)
        started = not failures and wait_for("a first leader", g.leader, PATIENCE)
        for n, (kind, replacement, hold) in enumerate(schedule if started else [], 1):
            settle(g.leader())
            time.sleep(hold * LEASE_MS / 1000)
            # The same leader, unless a term ended on its own (that is no
            # failure by itself, but a leader must come back in time).
            if not wait_for(f"round {n}: a leader", g.leader, bound_ns / 1e9):
                break
            leader = g.leader()
            t0 = now_ns()
            if kind == "term":
                sigterm(leader)
            else:
                g.kill(leader)
            who, ts = g.wait_started(t0, not_identity=leader, timeout=PATIENCE)
            if who is None:
                failures.append(f"round {n}: no leader within {PATIENCE:.0f} s of {kind} {leader}")
                break
            ms = (ts - t0) / 1e6
            rows.append((kind, leader, who, ms))
            over = " OVER THE BOUND" if ts - t0 > bound_ns else ""
            if over:
                failures.append(f"round {n}: {who} started {ms:.0f} ms after {kind} {leader}")
            print(f"# rolling round {n}: {'SIGTERM' if kind == 'term' else 'SIGKILL'} {leader} "
                  f"-> {who} leads after {ms:.0f} ms{over}; replacement {replacement}",
                  file=sys.stderr, flush=True)
            spawn(replacement)
        if started:
            settle(g.leader())
    finally:
        for identity in list(g.procs):
            sigterm(identity)
    until = now_ns()
    overlap = g.overlap_seconds(until)

    with g.lock:
        terms = [(who, start, until if end is None else end) for who, start, end in g.terms]
        log = [(who, json.loads(line), line) for who, line in g.log]

    def own_end(who, start):
        # The elector's own stopped_leading (or exited) line ending the term.
        return min((e["ts_unix_nanos"] for w, e, _ in log
                    if w == who and e["event"] in ("stopped_leading", "exited") and e["ts_unix_nanos"] >= start),
                   default=None)

    if overlap > 0:
        failures.append(f"overlap {overlap:.3f} s")
    for i, a in enumerate(terms):
        for b in terms[i + 1:]:
            if max(a[1], b[1]) < min(a[2], b[2]):
                print(f"# rolling OVERLAP: {a[0]} led {a[1]}..{a[2]}, {b[0]} led {b[1]}..{b[2]} (unix ns)",
                      file=sys.stderr)
                lo, hi = min(a[1], b[1]) - 10**9, max(a[2], b[2]) + 10**9
                for _, e, line in log:
                    if lo <= e["ts_unix_nanos"] <= hi:
                        print(f"#   {line}", file=sys.stderr)

    # The stop lines of SIGTERMed leaders, against the signal and the next start.
    lag = {n: [] for n in names}  # implementation -> [(ms after the signal, after the next start?)]
    for who, t0 in signalled:
        start = max(s for w, s, _ in terms if w == who and s <= t0)
        line = own_end(who, start)
        if line is None:
            continue
        nxt = min((s for w, s, _ in terms if w != who and s >= t0), default=None)
        late = nxt is not None and line > nxt
        lag[g.impl_of[who]].append(((line - t0) / 1e6, late))
        if late:
            print(f"# rolling: {who} printed stopped_leading {(line - t0) / 1e6:.2f} ms after its SIGTERM, "
                  f"{(line - nxt) / 1e6:.2f} ms after the next leader started", file=sys.stderr)
    by_lines = overlap_seconds([(w, s, own_end(w, s) or e) for w, s, e in terms], until)

    handovers = [r for r in rows if r[0] == "term"]
    crashes = [r for r in rows if r[0] == "kill"]
    if len(rows) < rounds:
        failures.append(f"{len(rows)} of {rounds} rounds ran")
    late = sum(1 for r in rows if r[3] * 1e6 > bound_ns)
    across = sum(1 for r in rows if g.impl_of[r[1]] != g.impl_of[r[2]])
    led = {n: sum(1 for t in terms if g.impl_of[t[0]] == n) for n in names}
    lines = [
        f"rolling: {len(handovers)} handovers, {len(crashes)} crashes, overlap {overlap:.3f} s, "
        + ("every takeover within bound" if not late else f"{late} takeovers over the bound")
        + ("" if not failures else "; FAILED: " + "; ".join(failures)),
        f"rolling: bound {bound_ns / 1e6:.0f} ms; slowest handover "
        f"{max((r[3] for r in handovers), default=float('nan')):.0f} ms, slowest crash takeover "
        f"{max((r[3] for r in crashes), default=float('nan')):.0f} ms; {across} of {len(rows)} "
        f"to another implementation; terms led: " + ", ".join(f"{n} {c}" for n, c in led.items())
        + f"; seed {seed}",
        "rolling: stopped_leading lines of SIGTERMed leaders: "
        + ", ".join(f"{n} {sum(1 for _, x in v if x)} of {len(v)} after the next start "
                    f"(up to {max(m for m, _ in v):.2f} ms after the signal)" if v else f"{n} none"
                    for n, v in lag.items())
        + f"; overlap by those lines {by_lines:.6f} s",
    ]
    return not failures, lines


def scale(server, binary, counts, durations_ms=(15000, 10000, 2000)):
    """N electors on N Leases in one process, for each N of `counts`
    (lease duration, renew deadline, retry period: `durations_ms`; it
    measures over two lease durations)."""
    rows = []
    lease, renew, retry = map(str, durations_ms)
    for n in counts:
        kubeconfig = server.kubeconfig(f"scale-{n}")
        out = subprocess.run(
            [binary, "--kubeconfig", kubeconfig, "--lease-name", f"scale{n}", "--identity", f"scale{n}",
             "--lease-duration-ms", lease, "--renew-deadline-ms", renew, "--retry-period-ms", retry,
             "--scale", str(n)],
            capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"scale {n} exited with status {out.returncode}: {out.stderr[-500:]}")
        for line in out.stdout.splitlines():
            if '"scale"' in line:
                rows.append(json.loads(line))
                print(f"# {line}", file=sys.stderr, flush=True)
    return rows


def _driven(server, binary, client, mode_flags):
    """Starts a benchmark-mode process as `client`; yields its JSON lines,
    each with a function that answers it (the process waits for that)."""
    kubeconfig = server.kubeconfig(client)
    proc = subprocess.Popen(
        [binary, "--kubeconfig", kubeconfig, "--lease-name", client, "--identity", client,
         "--lease-duration-ms", str(LEASE_MS), "--renew-deadline-ms", str(RENEW_MS),
         "--retry-period-ms", str(RETRY_MS)] + mode_flags,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def answer():
        proc.stdin.write("\n")
        proc.stdin.flush()
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                yield json.loads(line), answer
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            status = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            failed(f"{client}: still running 60 s after its stdin closed; killed")
            proc.kill()
            proc.wait()
        else:
            if status != 0:
                failed(f"{client}: exit status {status}")


def _requests_of(server, client, verbs=None):
    """Requests `client` sent so far (watches are long-lived: counted apart)."""
    rows = server.requests()["requests"]
    return sum(r["count"] for r in rows if r["client"] == client
               and (r["verb"] != "watch" if verbs is None else r["verb"] in verbs))


def herd(server, impl, binary, n, rounds):
    """N candidates on one Lease in one process; per graceful handover, the
    requests the process sent (from the moment all candidates see the old
    leader until all see the new one) and the time from the start of the
    old leader's shutdown to the new leader's start, measured in-process."""
    client = f"herd-{impl}-{n}"
    rows, before = [], 0
    for ev, answer in _driven(server, binary, client, ["--herd", str(n), "--rounds", str(rounds)]):
        if ev.get("event") == "herd_ready":
            before = _requests_of(server, client)
            answer()
        elif ev.get("event") == "herd_handover":
            rows.append((ev["ms"], _requests_of(server, client) - before))
            answer()
        elif ev.get("event") == "herd_done":
            break
    print(f"# herd {impl} N={n}: " + ", ".join(f"{ms:.1f} ms/{req} req" for ms, req in rows),
          file=sys.stderr, flush=True)
    return rows


def many(server, impl, binary, n, window_ms):
    """N Leases led by one process: memory and CPU over the window, and the
    requests per second and watch connections the server counted in it."""
    client = f"many-{impl}-{n}"
    row, before, watches = None, 0, 0
    for ev, answer in _driven(server, binary, client, ["--many", str(n), "--window-ms", str(window_ms)]):
        if ev.get("event") == "many_ready":
            before = _requests_of(server, client)
            watches = _requests_of(server, client, {"watch"})
            answer()
        elif ev.get("event") == "many":
            row = dict(ev)
            row["req_per_s"] = (_requests_of(server, client) - before) / (window_ms / 1000)
            row["watches"] = watches
            print(f"# many {impl}: {row}", file=sys.stderr, flush=True)
            answer()
            break
    return row


# === Sharding ===

class ShardGroup:
    """M replica processes of one sharded workload (`--sharding N`, or the
    baseline `--sharding-baseline N`), and who owned which shard when, from
    their `shard_acquired` / `shard_released` lines (wall clock, ns)."""

    def __init__(self, server, binary, mode, shards, prefix):
        self.server, self.binary, self.mode, self.shards, self.prefix = server, binary, mode, shards, prefix
        self.procs, self.readers, self.ready = {}, {}, {}
        self.terms = {s: [] for s in range(shards)}  # shard -> [[identity, start_ns, end_ns or None]]
        self.last_event_ns = now_ns()
        self.lock = threading.Lock()
        self.counter = 0
        self.checks = {}  # identity -> its LineCheck
        self.stopping = set()  # identities the harness signalled

    def spawn(self):
        self.counter += 1
        identity = f"{self.prefix}-r{self.counter}"
        args = [*shlex.split(self.binary), "--kubeconfig", self.server.kubeconfig(identity),
                "--namespace", "default", "--lease-name", self.prefix, "--identity", identity,
                "--lease-duration-ms", str(LEASE_MS), "--renew-deadline-ms", str(RENEW_MS),
                "--retry-period-ms", str(RETRY_MS), self.mode, str(self.shards)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=process_log(self.prefix, identity),
                                text=True)
        self.procs[identity] = proc
        self.checks[identity] = LineCheck(identity, label=f"{self.prefix}: {identity}", shards=self.shards)
        reader = threading.Thread(target=self._read, args=(identity, proc), daemon=True)
        self.readers[identity] = reader
        reader.start()
        return identity

    def _read(self, identity, proc):
        for line in proc.stdout:
            event = self.checks[identity].check(line)
            if event is None:
                continue
            with self.lock:
                ts = event["ts_unix_nanos"]
                if event["event"] == "ready":
                    self.ready[identity] = ts
                elif event["event"] == "shard_acquired":
                    self.terms[event["shard"]].append([identity, ts, None])
                    self.last_event_ns = max(self.last_event_ns, ts)
                elif event["event"] == "shard_released":
                    self._end(event["shard"], identity, ts)
                    self.last_event_ns = max(self.last_event_ns, ts)
        watch_exit(identity, proc, self.stopping, self.checks[identity].label)

    def _end(self, shard, identity, ts):
        for term in reversed(self.terms[shard]):
            if term[0] == identity and term[2] is None:
                term[2] = ts
                return

    def owners(self):
        """shard -> the identities whose term of it is open."""
        with self.lock:
            return {s: [t[0] for t in terms if t[2] is None] for s, terms in self.terms.items()}

    def counts(self):
        owned = {i: 0 for i in self.procs}
        for who in self.owners().values():
            for i in who:
                owned[i] = owned.get(i, 0) + 1
        return owned

    def settle(self, balanced, quiet=1.5, timeout=60.0):
        """Waits until every shard has one owner among the live replicas (and,
        if `balanced`, each owns floor(N/M) or ceil(N/M)) and no line came for
        `quiet` seconds. Returns whether it did."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            owners = self.owners()
            ok = all(len(w) == 1 and w[0] in self.procs for w in owners.values())
            if ok and balanced:
                m = len(self.procs)
                c = self.counts().values()
                ok = min(c) >= self.shards // m and max(c) <= -(-self.shards // m)
            with self.lock:
                calm = now_ns() - self.last_event_ns > quiet * 1e9
            if ok and calm:
                return True
            time.sleep(0.05)
        return False

    def moved_time(self, before, since_ns, shards=None):
        """(shards whose owner changed since `before`, the time in ms from
        `since_ns` until the last of them had its new owner's term open)."""
        after = self.owners()
        moved = [s for s in range(self.shards) if (shards is None or s in shards)
                 and after[s] and before.get(s) != after[s]]
        latest = since_ns
        with self.lock:
            for s in moved:
                start = next(t[1] for t in reversed(self.terms[s]) if t[0] == after[s][0] and t[2] is None)
                latest = max(latest, start)
        return len(moved), (latest - since_ns) / 1e6

    def terminate(self, identity):
        proc = self.procs.pop(identity)
        stop_process(identity, proc, self.readers[identity], self.checks[identity], self.stopping, patience=30)

    def kill(self, identity):
        proc = self.procs.pop(identity)
        self.stopping.add(identity)
        proc.kill()
        proc.wait()
        ts = now_ns()
        self.readers[identity].join(timeout=5)
        with self.lock:
            for s in self.terms:
                self._end(s, identity, ts)

    def stop_all(self):
        for identity in list(self.procs):
            self.terminate(identity)

    def overlaps(self):
        """(shards ever owned by two replicas at once, total seconds of it)."""
        until = now_ns()
        with self.lock:
            per = [overlap_seconds(terms, until) for terms in self.terms.values()]
        return sum(1 for o in per if o > 0), sum(per)

    def requests(self, rows):
        """Requests so far per replica (every verb) from the server's rows."""
        mine = {f"{self.prefix}-r{k}" for k in range(1, self.counter + 1)}
        return {c: sum(r["count"] for r in rows if r["client"] == c) for c in mine}


def sharding(server, binary, mode, shards, m, window):
    """One sharded workload of `shards` shards on `m` replicas (`mode`:
    --sharding or --sharding-baseline): balance after settling, requests per
    replica per second over `window` s, then a graceful join (m -> m+1), a
    graceful leave (SIGTERM, back to m) and, if m >= 2, a crash (SIGKILL,
    m -> m-1); overlaps over the whole run. Returns a dict of figures."""
    balanced = mode == "--sharding"
    prefix = f"sh{'b' if not balanced else 's'}{m}-{now_ns() % 10**6}"
    g = ShardGroup(server, binary, mode, shards, prefix)
    out = {}
    try:
        t0 = time.time()
        for _ in range(m):
            g.spawn()
        out["settled"] = g.settle(balanced)
        out["settle_s"] = time.time() - t0
        c = g.counts()
        out["max"], out["min"] = max(c.values()), min(c.values())
        live = set(g.procs)
        before = server.requests()["requests"]
        time.sleep(window)
        after = server.requests()["requests"]
        ra, rb = g.requests(after), g.requests(before)
        per = [(ra.get(i, 0) - rb.get(i, 0)) / window for i in live]
        out["req_per_replica"] = statistics.mean(per)
        out["req_max_replica"] = max(per)
        out["req_total"] = sum(per)
        # A graceful join: from the joiner's `ready` line (before its first
        # request) until every moved shard's new owner holds it.
        own0 = {s: w[0] if w else None for s, w in g.owners().items()}
        joiner = g.spawn()
        out["join_settled"] = g.settle(balanced)
        with g.lock:
            ready = g.ready.get(joiner, now_ns())
        moved, ms = g.moved_time({s: [o] for s, o in own0.items()}, ready)
        out["join_moved"], out["join_ms"] = moved, ms if moved else float("nan")
        # A graceful leave: SIGTERM to the replica owning the most shards
        # (the oldest of those).
        own0 = g.owners()
        c = g.counts()
        leaver = sorted(g.procs, key=lambda i: (-c.get(i, 0), int(i.rsplit("r", 1)[1])))[0]
        t_leave = now_ns()
        g.terminate(leaver)
        out["leave_settled"] = g.settle(balanced)
        moved, ms = g.moved_time(own0, t_leave)
        out["leave_moved"], out["leave_ms"] = moved, ms if moved else float("nan")
        # A crash: SIGKILL to the replica owning the most shards.
        if len(g.procs) >= 2:
            c = g.counts()
            victim = max(c, key=c.get)
            own0 = g.owners()
            lost = {s for s, w in own0.items() if victim in w}
            t_kill = now_ns()
            g.kill(victim)
            out["crash_settled"] = g.settle(balanced, timeout=60 + LEASE_MS / 1000)
            moved, ms = g.moved_time(own0, t_kill, lost)
            out["crash_moved"] = moved
            out["crash_ms"] = ms if moved else float("nan")
            out["crash_minus_lease_ms"] = ms - LEASE_MS if moved else float("nan")
    finally:
        g.stop_all()
    out["overlap_shards"], out["overlap_s"] = g.overlaps()
    print(f"# sharding {mode} N={shards} M={m}: {out}", file=sys.stderr, flush=True)
    return out


# === Main ===

def handover_figures(server, name, binary, rounds, seed, rtt_median, floor):
    """The graceful handover's figures for one implementation: median, p99,
    samples, and the median over one GET's round trip and over the floor
    (a PUT seen by a watch, then another PUT)."""
    try:
        g = graceful(server, name, binary, rounds, seed)
    except Exception as e:  # noqa: BLE001 - report and go on
        traceback.print_exc(file=sys.stderr)
        failed(f"graceful {name}: raised {e!r}")
        g = None
    g = sampled(f"graceful {name}", g)
    figures = [("graceful_handover_median", name, statistics.median(g) if g else float("nan"), "ms"),
               ("graceful_handover_p99", name, percentile(g, 99), "ms"),
               ("graceful_handover_samples", name, len(g), "count")]
    if g and rtt_median:
        figures.append(("graceful_handover_in_rtts", name, statistics.median(g) / rtt_median, "RTTs"))
    if g and floor:
        figures.append(("graceful_handover_over_floor", name, statistics.median(g) / floor, "x"))
    if g:
        print(f"# graceful {name}: " + " ".join(f"{t:.1f}" for t in g), file=sys.stderr, flush=True)
    return figures


def main():
    global LEASE_MS, RENEW_MS, RETRY_MS  # set from the flags: what every elector is given
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="the lease-apiserver binary (the embedded server, started here)")
    where.add_argument("--real-kubeconfig", help="a real kube-apiserver's admin kubeconfig (already running)")
    parser.add_argument("--rtt-binary", help="bench-kube-elector, to time one GET (default: the kube-elector --impl)")
    parser.add_argument("--timeline", help="write the partition scenario's terms and faults here (JSON, for bench/timeline.py)")
    parser.add_argument("--impl", action="append", default=[], help="NAME=BINARY")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="every scenario once, one sample each, at the smallest sizes: figures printed, not "
                             "checked; exits 1 if a scenario raised or took no sample, a process died or exited "
                             "badly, or a line broke the line protocol")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=["partition", "rolling", "herd", "many", "peers", "directed", "sharding",
                                           "graceful", "controller", "command"],
                        help="run just this scenario (a targeted measurement, or the rolling-upgrade check); "
                             "peers: the scenarios every implementation runs (partition, handover, crash, "
                             "load, chaos, and the RTT), not scale, herd, many or rolling; graceful: the RTT "
                             "and the graceful handover alone")
    parser.add_argument("--ctl-stack", action="append", default=[],
                        help="NAME=COMMAND: a stack of the controller scenario (real server; see controller_bench.py)")
    parser.add_argument("--ctl-sizes", help="the controller scenario's N, comma-separated (default 1000,10000)")
    parser.add_argument("--ctl-rounds", type=int, help="failovers of each kind per stack and N (default 10)")
    parser.add_argument("--ctl-concurrency", type=int, default=4, help="reconciles at once, every stack")
    parser.add_argument("--faultproxy", help="command: interop's faultproxy binary")
    parser.add_argument("--stamp-child", help="command: interop's stamp-child binary (the child both run)")
    parser.add_argument("--seeds", type=int, help="command: how many seeds (default 4, quick 2, smoke 1)")
    parser.add_argument("--rolling-rounds", type=int, help="rounds of the rolling scenario (default 10, 6 quick)")
    parser.add_argument("--lease-duration-ms", type=int, default=LEASE_MS)
    parser.add_argument("--renew-deadline-ms", type=int, default=RENEW_MS)
    parser.add_argument("--retry-period-ms", type=int, default=RETRY_MS)
    args = parser.parse_args()
    LEASE_MS, RENEW_MS, RETRY_MS = args.lease_duration_ms, args.renew_deadline_ms, args.retry_period_ms
    impls = dict(i.split("=", 1) for i in args.impl)
    rounds = 5 if args.quick else 20
    crash_rounds = 2 if args.quick else 5
    window = 5 if args.quick else 20
    chaos_seconds = 15 if args.quick else 60
    scale_counts = [10, 100] if args.quick else [10, 100, 1000]
    scale_durations = (15000, 10000, 2000)
    rolling_rounds = args.rolling_rounds or (6 if args.quick else 10)
    herd_counts = [10, 100] if args.quick else [10, 100, 1000]
    herd_rounds = 3 if args.quick else 10
    many_count = 1000 if args.quick else 10000
    many_window_ms = 20000
    rtt_samples = 50 if args.quick else 200
    shard_n = 64
    shard_replicas = [1, 4] if args.quick else [1, 2, 4, 8]
    shard_window = 5 if args.quick else 10
    partition_patience = PATIENCE
    if args.smoke:
        # One sample of everything, at the smallest sizes: a handover, a
        # crash and a partition per implementation, a one-second load window,
        # one chaos fault; the sharding scenario on 2 replicas (so that join,
        # leave and crash all run) of 8 shards; a handover and a crash in the
        # rolling check. Scale measures over two lease durations of the run's.
        rounds, crash_rounds, window, chaos_seconds = 1, 1, 1, 3
        partition_patience = 3 * LEASE_MS / 1000  # a partitioned leader that still leads then never stops
        scale_counts, scale_durations = [10], (LEASE_MS, RENEW_MS, RETRY_MS)
        rolling_rounds = args.rolling_rounds or 2
        herd_counts, herd_rounds = [10], 1
        many_count, many_window_ms = 10, 1000
        rtt_samples = 5
        shard_n, shard_replicas, shard_window = 8, [2], 1
        if "kube-elector" not in impls and args.only not in ("controller", "command"):
            raise SystemExit("--smoke: no kube-elector among --impl (it runs the scenarios only it has)")
    ctl_sizes = [int(x) for x in args.ctl_sizes.split(",")] if args.ctl_sizes else [1000, 10000]
    ctl_rounds = args.ctl_rounds or 10
    ctl_window = 10
    if args.smoke:
        ctl_sizes, ctl_rounds, ctl_window = ([int(x) for x in args.ctl_sizes.split(",")] if args.ctl_sizes
                                             else [50]), args.ctl_rounds or 1, 1
    herd_impls = [n for n in impls if n in ("kube-elector", "client-go")]
    rolling_ok, rolling_lines = True, []
    if args.only == "command":
        command_run(args, impls)
        return

    figures = []  # (figure, implementation, value, unit)
    ran = []  # the scenarios run, as "scenario implementation"

    def attempt(what, run, *a):
        # A scenario that breaks costs its figures, not the run (but it is
        # listed at the end, and fails a smoke run).
        ran.append(what)
        try:
            return run(*a)
        except Exception as e:  # noqa: BLE001 - report and go on
            traceback.print_exc(file=sys.stderr)
            failed(f"{what}: raised {e!r}")
            return None

    timelines = []
    real = args.real_kubeconfig is not None
    rtt_binary = args.rtt_binary or impls.get("kube-elector")
    rtt_median = None
    handover_floor = None
    with tempfile.TemporaryDirectory() as workdir:
        server = RealServer(args.real_kubeconfig) if real else Server(args.server, workdir)
        try:
            peers = args.only in (None, "peers")
            handover_only = args.only == "graceful"
            if rtt_binary and (peers or handover_only):
                r = attempt("rtt", rtt, server, shlex.split(rtt_binary)[0], rtt_samples)
                if r:
                    rtt_median = r[0]
                    figures += [("get_rtt_median", "kube-elector", r[0], "ms"),
                                ("get_rtt_p99", "kube-elector", r[1], "ms")]
                    if r[2] is not None:
                        figures += [("put_rtt_median", "kube-elector", r[2], "ms"),
                                    ("put_rtt_p99", "kube-elector", r[3], "ms")]
                    if r[4] is not None:
                        figures.append(("put_seen_by_watch_median", "kube-elector", r[4], "ms"))
                    if r[7] is not None:
                        # A handover's floor: the release reaches a watch,
                        # then the acquire's PUT, each after a pause (as in
                        # a handover: nobody wrote for a while).
                        handover_floor = r[7] + r[6]
                        figures += [("idle_get_rtt_median", "kube-elector", r[5], "ms"),
                                    ("idle_put_rtt_median", "kube-elector", r[6], "ms"),
                                    ("idle_put_seen_by_watch_median", "kube-elector", r[7], "ms"),
                                    ("handover_floor", "kube-elector", handover_floor, "ms")]
            if real and peers:
                baseline = attempt("baseline load", baseline_load, server, window) or 0.0
                figures.append(("api_load_apiserver_own", "kube-elector", baseline, "req/s"))
            for name, binary in impls.items() if real and (peers or handover_only) else ():
                print(f"# {name} (real server)", file=sys.stderr)
                ran.append(f"graceful {name}")
                figures += handover_figures(server, name, binary, rounds, args.seed, rtt_median, handover_floor)
                if handover_only:
                    continue
                c = sampled(f"crash {name}", attempt(f"crash {name}", crash, server, name, binary, crash_rounds,
                                                     args.seed))
                figures += [("crash_takeover_median", name, statistics.median(c) if c else float("nan"), "ms"),
                            ("crash_takeover_minus_lease_median", name,
                             (statistics.median(c) - LEASE_MS) if c else float("nan"), "ms")]
                total, followers, leader = attempt(f"api load {name}", api_load_real, server, name, binary, window,
                                                   baseline) or (float("nan"),) * 3
                figures += [("api_load_total", name, total, "req/s"),
                            ("api_load_followers", name, followers, "req/s"),
                            ("api_load_leader", name, leader, "req/s")]
                for fig in figures:
                    if fig[1] == name:
                        print(",".join(map(str, fig)), file=sys.stderr, flush=True)
            for name, binary in impls.items() if not real and args.only in (None, "partition", "peers",
                                                                           "graceful") else ():
                print(f"# {name}", file=sys.stderr)
                if handover_only:
                    ran.append(f"graceful {name}")
                    figures += handover_figures(server, name, binary, rounds, args.seed, rtt_median, handover_floor)
                    continue
                # (No sample is a figure here: a leader that never stopped.)
                p, timeline = attempt(f"partition {name}", partition, server, name, binary, crash_rounds,
                                      partition_patience) or ([], None)
                if timeline:
                    timelines.append(timeline)
                figures += [("partition_stop_median", name,
                             statistics.median(r[0] for r in p) if p else float("nan"), "ms"),
                            ("partition_takeover_median", name,
                             statistics.median(r[1] for r in p) if p else float("nan"), "ms"),
                            ("partition_margin_min", name, min(r[2] for r in p) if p else float("nan"), "ms")]
                if args.only == "partition":
                    continue
                ran.append(f"graceful {name}")
                figures += handover_figures(server, name, binary, rounds, args.seed, rtt_median, handover_floor)
                c = sampled(f"crash {name}", attempt(f"crash {name}", crash, server, name, binary, crash_rounds,
                                                     args.seed))
                figures += [("crash_takeover_median", name, statistics.median(c) if c else float("nan"), "ms"),
                            ("crash_takeover_minus_lease_median", name,
                             (statistics.median(c) - LEASE_MS) if c else float("nan"), "ms")]
                total, followers = attempt(f"api load {name}", api_load, server, name, binary, window) or (
                    float("nan"), float("nan"))
                figures += [("api_load_total", name, total, "req/s"),
                            ("api_load_followers", name, followers, "req/s")]
                overlap = attempt(f"chaos {name}", chaos, server, name, binary, chaos_seconds, args.seed)
                figures.append(("chaos_overlap", name, float("nan") if overlap is None else overlap, "s"))
                for fig in figures:
                    if fig[1] == name:
                        print(",".join(map(str, fig)), file=sys.stderr, flush=True)
            if not real and "kube-elector" in impls and args.only in (None, "directed"):
                print("# kube-elector (directed handover)", file=sys.stderr)
                d, others = attempt("directed kube-elector", directed, server, impls["kube-elector"], rounds,
                                    args.seed) or (None, 0)
                d = sampled("directed kube-elector", d)
                figures += [("directed_handover_median", "kube-elector",
                             statistics.median(d) if d else float("nan"), "ms"),
                            ("directed_handover_p99", "kube-elector", percentile(d, 99), "ms"),
                            ("directed_handover_samples", "kube-elector", len(d), "count"),
                            ("directed_handover_taken_by_another", "kube-elector", others, "count")]
            if not real and "kube-elector" in impls and args.only is None:
                for row in sampled("scale kube-elector", attempt("scale kube-elector", scale, server,
                                                                 impls["kube-elector"], scale_counts,
                                                                 scale_durations)):
                    n = row["electors"]
                    figures += [(f"scale_{n}_rss", "kube-elector", row["rss_kib"] / 1024, "MiB"),
                                (f"scale_{n}_cpu", "kube-elector", row["cpu_share"] * 100, "% of a core"),
                                (f"scale_{n}_leading", "kube-elector", row["leading"], "count")]
            if not real and args.only in (None, "herd"):
                for name in herd_impls:
                    for n in herd_counts:
                        rows = sampled(f"herd {n} {name}", attempt(f"herd {n} {name}", herd, server, name,
                                                                   impls[name], n, herd_rounds))
                        ms = [r[0] for r in rows]
                        req = [r[1] for r in rows]
                        figures += [(f"herd_{n}_handover_median", name, statistics.median(ms) if ms else float("nan"), "ms"),
                                    (f"herd_{n}_handover_p99", name, percentile(ms, 99) if ms else float("nan"), "ms"),
                                    (f"herd_{n}_requests_median", name, statistics.median(req) if req else float("nan"), "count"),
                                    (f"herd_{n}_requests_max", name, max(req) if req else float("nan"), "count")]
            if not real and args.only in (None, "many"):
                # The durations guide's figures for many Leases: lease 60 s,
                # renew deadline 40 s, retry 10 s (1,000 renews/s at 10,000).
                saved = (LEASE_MS, RENEW_MS, RETRY_MS)
                LEASE_MS, RENEW_MS, RETRY_MS = 60000, 40000, 10000
                for name in herd_impls:
                    row = sampled(f"many {many_count} {name}", attempt(f"many {many_count} {name}", many, server,
                                                                       name, impls[name], many_count,
                                                                       many_window_ms))
                    if row:
                        figures += [(f"many_leases_{many_count}_rss", name, row["rss_kib"] / 1024, "MiB"),
                                    (f"many_leases_{many_count}_cpu", name, row["cpu_share"] * 100, "% of a core"),
                                    (f"many_leases_{many_count}_leading", name, row["leading"], "count"),
                                    (f"many_leases_{many_count}_watches", name, row["watches"], "count"),
                                    (f"many_leases_{many_count}_requests", name, row["req_per_s"], "req/s")]
                LEASE_MS, RENEW_MS, RETRY_MS = saved
            if not real and args.only in (None, "sharding") and "kube-elector" in impls:
                for m in shard_replicas:
                    for label, mode in (("kube-elector", "--sharding"), ("knative-style", "--sharding-baseline")):
                        what = f"sharding {shard_n}x{m} {label}"
                        r = attempt(what, sharding, server, impls["kube-elector"], mode, shard_n, m, shard_window)
                        if not r:
                            continue
                        for step, when in (("settled", "at the start"), ("join_settled", "after the join"),
                                           ("leave_settled", "after the leave"), ("crash_settled", "after the crash")):
                            if r.get(step) is False:
                                failed(f"{what}: did not settle {when} within the deadline")
                        p = f"sharding_{shard_n}x{m}"
                        figures += [(f"{p}_settled", label, str(r["settled"]), "bool"),
                                    (f"{p}_max_shards", label, r["max"], "count"),
                                    (f"{p}_min_shards", label, r["min"], "count"),
                                    (f"{p}_req_per_replica", label, r["req_per_replica"], "req/s"),
                                    (f"{p}_req_total", label, r["req_total"], "req/s"),
                                    (f"{p}_join_moved", label, r["join_moved"], "count"),
                                    (f"{p}_join_ms", label, r["join_ms"], "ms"),
                                    (f"{p}_leave_moved", label, r["leave_moved"], "count"),
                                    (f"{p}_leave_ms", label, r["leave_ms"], "ms")]
                        if "crash_ms" in r:
                            figures += [(f"{p}_crash_moved", label, r["crash_moved"], "count"),
                                        (f"{p}_crash_ms", label, r["crash_ms"], "ms"),
                                        (f"{p}_crash_minus_lease_ms", label, r["crash_minus_lease_ms"], "ms")]
                        figures += [(f"{p}_overlap_shards", label, r["overlap_shards"], "count"),
                                    (f"{p}_overlap", label, r["overlap_s"], "s")]
            if real and args.only in (None, "controller") and args.ctl_stack:
                # controller_bench.py uses this module's helpers as `bench`.
                sys.modules.setdefault("bench", sys.modules[__name__])
                import controller_bench
                stacks = dict(s.split("=", 1) for s in args.ctl_stack)
                figures += controller_bench.run(server, stacks, ctl_sizes, ctl_rounds, ctl_window,
                                                args.ctl_concurrency, args.seed, attempt)
            elif args.only == "controller" and not (real and args.ctl_stack):
                raise SystemExit("controller: needs --real-kubeconfig and --ctl-stack")
            mixed = rolling_participants(impls)
            if not real and args.only in (None, "rolling") and mixed:
                print(f"# rolling: {', '.join(mixed)} on one Lease", file=sys.stderr)
                rolling_ok, rolling_lines = attempt(f"rolling {' '.join(mixed)}", rolling, server, mixed, rolling_rounds,
                                                    args.seed) or (False, ["rolling: FAILED: the scenario raised"])
            elif args.only == "rolling" and not real:
                raise SystemExit("rolling: no kube-elector* or client-go implementation among --impl")
        finally:
            server.stop()

    if args.timeline and timelines:
        with open(args.timeline, "w") as f:
            json.dump({"lease_ms": LEASE_MS, "renew_deadline_ms": RENEW_MS, "retry_ms": RETRY_MS,
                       "seed": args.seed, "scenario": "partition", "implementations": timelines}, f, indent=1)
        print(f"# timeline data: {args.timeline}", file=sys.stderr)

    names = list(impls)
    names += [n for n in dict.fromkeys(i for _, i, _, _ in figures) if n not in names]  # knative-style
    kind = " ".join(filter(None, [args.only, "smoke" if args.smoke else "quick" if args.quick else None])) or "full"
    print(f"\n{'Real kube-apiserver' if real else 'Embedded Lease API server'}; lease {LEASE_MS} ms, renew deadline {RENEW_MS} ms, retry {RETRY_MS} ms; "
          f"{kind} run, seed {args.seed}\n")
    if figures:
        print("| figure | unit | " + " | ".join(names) + " |")
        print("|---|---|" + "---|" * len(names))
        for fig in dict.fromkeys(f for f, _, _, _ in figures):
            unit = next(u for f, _, _, u in figures if f == fig)
            cells = []
            for n in names:
                v = next((v for f, i, v, _ in figures if f == fig and i == n), None)
                cells.append("" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v))
            print(f"| {fig} | {unit} | " + " | ".join(cells) + " |")
        print()
    for fig, name, value, unit in figures:
        v = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{fig},{name},{v},{unit}")
    for line in rolling_lines:
        print(line)
    print(f"\nran: {', '.join(ran)}")
    with _failures_lock:
        problems = list(FAILURES)
    if problems:
        print(f"{len(problems)} failure(s):")
        for what in problems:
            print(f"FAILED: {what}")
    if args.smoke:
        print(f"smoke: {len(ran)} scenario runs, " + (f"{len(problems)} failure(s)" if problems else "no failure"))
    if not rolling_ok or (args.smoke and problems):
        sys.exit(1)


def command_run(args, impls):
    """--only command (bench/command.py): kube-elector run beside
    client-go-runner, as processes on a real kube-apiserver through the
    fault proxy; prints the figures as main() does."""
    import command

    if args.real_kubeconfig is None or not args.faultproxy or not args.stamp_child:
        raise SystemExit("--only command needs --real-kubeconfig, --faultproxy and --stamp-child")
    lease_s = LEASE_MS / 1000
    grace_ms = 200  # within kube-elector's rule: grace + renew deadline / 10 + retry < renew deadline

    def kube_elector(binary):
        return lambda lease, name, kubeconfig: [
            binary, "run", "--lease", lease, "--namespace", "default", "--identity", name,
            "--lease-duration", f"{LEASE_MS}ms", "--renew-deadline", f"{RENEW_MS}ms",
            "--retry-period", f"{RETRY_MS}ms", "--grace-period", f"{grace_ms}ms", "--drain-timeout", "5s"]

    def client_go_runner(binary):
        return lambda lease, name, kubeconfig: [
            binary, "--kubeconfig", kubeconfig, "--namespace", "default", "--lease-name", lease,
            "--identity", name, "--lease-duration-ms", str(LEASE_MS), "--renew-deadline-ms", str(RENEW_MS),
            "--retry-period-ms", str(RETRY_MS), "--grace-period-ms", str(grace_ms)]

    argvs = {}
    for name, binary in impls.items():
        if name.startswith("kube-elector"):
            argvs[name] = kube_elector(binary)
        elif name.startswith("client-go-runner"):
            argvs[name] = client_go_runner(binary)
        else:
            raise SystemExit(f"--only command: no command mode for --impl {name} (kube-elector*, client-go-runner*)")
    server = RealServer(args.real_kubeconfig)
    upstream = server.url.split("://", 1)[1]
    seeds_n = args.seeds or (1 if args.smoke else 2 if args.quick else 4)
    seeds = [args.seed + 1000 * i for i in range(seeds_n)]
    plan = {"graceful": 1 if args.smoke else 3 if args.quick else 5,
            "crash": 1 if args.smoke else 2 if args.quick else 3,
            "chaos_s": 5 if args.smoke else 15 if args.quick else 30}
    proxy = command.Proxy(args.faultproxy, upstream)
    keep = os.environ.get("BENCH_LOG_DIR")
    workdir = keep or tempfile.mkdtemp(prefix="kube-elector-command.")
    os.makedirs(workdir, exist_ok=True)
    try:
        env = {"workdir": workdir, "proxy": proxy, "kubeconfig_text": open(args.real_kubeconfig).read(),
               "stamp_child": args.stamp_child, "lease_s": lease_s}
        figures = command.run(argvs, seeds, plan, env, failed,
                              lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        proxy.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    names = list(impls)
    kind = "smoke" if args.smoke else "quick" if args.quick else "full"
    print(f"\nReal kube-apiserver through the fault proxy; lease {LEASE_MS} ms, renew deadline {RENEW_MS} ms, "
          f"retry {RETRY_MS} ms, grace {grace_ms} ms; command {kind} run, seeds {seeds}; "
          f"per seed {plan['graceful']} handovers, {plan['crash']} crashes, {plan['chaos_s']} s of chaos\n")
    print("| figure | unit | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for fig in dict.fromkeys(f for f, _, _, _ in figures):
        unit = next(u for f, _, _, u in figures if f == fig)
        cells = []
        for n in names:
            v = next((v for f, i, v, _ in figures if f == fig and i == n), None)
            cells.append("" if v is None else f"{v:.1f}" if isinstance(v, float) and unit == "ms"
                         else f"{v:.3f}" if isinstance(v, float) else str(v))
        print(f"| {fig} | {unit} | " + " | ".join(cells) + " |")
    print()
    for fig, name, value, unit in figures:
        v = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{fig},{name},{v},{unit}")
    with _failures_lock:
        problems = list(FAILURES)
    for what in problems:
        print(f"FAILED: {what}")
    if args.smoke:
        print("smoke: command, " + (f"{len(problems)} failure(s)" if problems else "no failure"))
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()
