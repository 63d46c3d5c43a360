"""The controller scenario of bench.py (`--only controller`, real server only):
a leader-gated controller over N ConfigMaps, two replicas per stack, timed
through failovers. See bench/README.md ("The controller scenario").

Stacks (each a `--ctl-stack NAME=COMMAND` of bench.py, spoken to in the
line protocol of interop/README.md plus two events: `reconciled` (field
`object`, `value`) when a reconcile patched an object, `synced` when a warm
follower's store has listed):

    kube-elector-cold          bench-kube-elector --controller cold
    kube-elector-warm          bench-kube-elector --controller warm
    controller-runtime         controller-runtime-manager --warmup=false
    controller-runtime-warmup  controller-runtime-manager --warmup=true

Every stack gets the same flags: `--selector bench-controller=N`,
`--concurrency`, the annotation and data key of the reconcile body (patch
annotation `bench.kube-elector.io/seen` to the value of data key `gen` when
they differ, nothing otherwise). The N ConfigMaps are made once per N with
the annotation equal to the data, so a steady state patches nothing.

One round: the leader is SIGKILLed (a crash) or SIGTERMed (a graceful
shutdown); right after the signal the driver changes `gen` of 10 objects
picked at random (10 merge patches in parallel); it then waits for the next
`started_leading` (kill -> elected) and for a `reconciled` line of each of
the 10 objects with the new value (elected -> done: the last of them minus
the start of the new term). A replacement replica starts, and the next
round waits until it is `ready` (cold) or `synced` (warm). Figures, never
asserts.
"""

import http.client
import json
import queue
import random
import re
import statistics
import threading
import time
import urllib.parse

import bench as b  # bench.py, which imports this module (see its main())

ANNOTATION = "bench.kube-elector.io/seen"
DATA_KEY = "gen"
LABEL = "bench-controller"
CHANGED = 10  # objects changed during each failover
NAMESPACE = "default"


class Api:
    """A few HTTP requests to the real kube-apiserver of a bench.RealServer,
    over kept-alive connections (one per thread)."""

    def __init__(self, server):
        self.server = server
        u = urllib.parse.urlsplit(server.url)
        self.host, self.port = u.hostname, u.port or 443
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.server.tls, timeout=30)
            self.local.conn = c
        return c

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {"authorization": f"Bearer {self.server.token}", "accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = content_type
        for attempt in range(3):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                text = r.read().decode()
                return r.status, text
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def parallel(self, items, work, threads=8):
        """Calls work(item) for each item on `threads` threads; raises the
        first error."""
        q = queue.Queue()
        for item in items:
            q.put(item)
        errors = []

        def run():
            while not errors:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(item)
                except Exception as e:  # noqa: BLE001 - handed to the caller
                    errors.append(e)
        ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]

    def populate(self, n):
        """Makes ConfigMaps ctl-N-00000.. with label bench-controller=N,
        annotation == data (so nothing is to reconcile), unless present."""
        path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
        status, text = self.request("GET", f"{path}?labelSelector={LABEL}%3D{n}&limit=1")
        if status == 200 and json.loads(text)["items"]:
            status, text = self.request("GET", f"{path}?labelSelector={LABEL}%3D{n}")
            have = len(json.loads(text)["items"])
            if have == n:
                return
        names = [f"ctl-{n}-{i:05d}" for i in range(n)]

        def create(name):
            status, text = self.request("POST", path, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {LABEL: str(n)}, "annotations": {ANNOTATION: "0"}},
                "data": {DATA_KEY: "0"}})
            if status not in (201, 409):
                raise RuntimeError(f"create {name}: {status} {text[:200]}")
        self.parallel(names, create)

    def change(self, names, value):
        """Sets data `gen` of each name to value, in parallel."""
        def patch(name):
            status, text = self.request(
                "PATCH", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}",
                {"data": {DATA_KEY: value}}, content_type="application/merge-patch+json")
            if status != 200:
                raise RuntimeError(f"patch {name}: {status} {text[:200]}")
        self.parallel(names, patch, threads=len(names))

    def metrics(self):
        """(requests so far by resource, open watches by resource) for
        ConfigMaps and Leases: apiserver_request_total without WATCH (a
        watch counts when it ends) and apiserver_longrunning_requests
        with verb WATCH."""
        status, text = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics: {status}")
        requests = {"configmaps": 0.0, "leases": 0.0}
        watches = {"configmaps": 0.0, "leases": 0.0}
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{"):
                target = requests
                if 'verb="WATCH"' in line:
                    continue
            elif line.startswith("apiserver_longrunning_requests{") and 'verb="WATCH"' in line:
                target = watches
            else:
                continue
            m = re.search(r'resource="([^"]*)"', line)
            if m and m.group(1) in target:
                target[m.group(1)] += float(line.rsplit(" ", 1)[1])
        return requests, watches


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Replicas(b.Group):
    """bench.Group with the flags of the controller scenario and a record of
    every `reconciled` and `synced` line."""

    def __init__(self, server, stack, command, lease, n, concurrency):
        super().__init__(server, stack, command, lease)
        self.extra = ["--selector", f"{LABEL}={n}", "--concurrency", str(concurrency),
                      "--annotation", ANNOTATION, "--data-key", DATA_KEY]
        self.reconciled = []  # (identity, object, value, ts)
        self.synced = set()
        self.changed = threading.Condition(self.lock)

    def add(self):
        return self.spawn(extra=self.extra)

    def _read(self, identity, proc):
        # bench.Group._read, with the two extra events recorded.
        for line in proc.stdout:
            event = self.checks[identity].check(line)
            if event is None:
                continue
            with self.lock:
                kind = event["event"]
                if kind == "started_leading":
                    self.terms.append([identity, event["ts_unix_nanos"], None])
                elif kind in ("stopped_leading", "exited"):
                    self._end(identity, event["ts_unix_nanos"])
                elif kind == "ready":
                    self.ready.add(identity)
                elif kind == "synced":
                    self.synced.add(identity)
                elif kind == "reconciled":
                    self.reconciled.append((identity, event.get("object"), event.get("value"),
                                            event["ts_unix_nanos"]))
                self.changed.notify_all()
        b.watch_exit(identity, proc, self.stopping, self.checks[identity].label)

    def wait(self, what, cond, timeout):
        """Waits until cond() (called with the lock held) is true; raises
        with `what` after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.lease}: no {what} within {timeout:.0f} s")
                self.changed.wait(min(left, 0.5))

    def warm(self, identity, warm_mode, timeout):
        """Until `identity` is ready, and in a warm stack synced."""
        self.wait(f"{'synced' if warm_mode else 'ready'} line from {identity}",
                  lambda: identity in (self.synced if warm_mode else self.ready), timeout)

    def signal(self, identity, crash):
        """SIGKILL or SIGTERM without waiting for the exit; the term ends now.
        Returns the process (to reap) and the signal's time."""
        proc = self.procs.pop(identity)
        self.stopping.add(identity)
        ts = b.now_ns()
        if crash:
            proc.kill()
        else:
            proc.send_signal(b.signal.SIGTERM)
        with self.lock:
            self._end(identity, ts)
        return proc, ts


def steady(api, g, window, baseline, watches0):
    """(requests/s of ConfigMaps and Leases minus the apiserver's own Lease
    rate, open ConfigMap watches, open Lease watches (each minus `watches0`,
    those open before the replicas started: the apiserver's own), RSS of the
    leader and of the follower in MiB) over `window` seconds in the steady
    state."""
    req0, _ = api.metrics()
    time.sleep(window)
    req1, watches = api.metrics()
    rate = (req1["configmaps"] - req0["configmaps"] + req1["leases"] - req0["leases"]) / window - baseline
    leader = g.leader()

    def rss_of(leading):
        kib = [rss_kib(p.pid) for who, p in g.procs.items() if (who == leader) == leading]
        kib = [k for k in kib if k is not None]
        return max(kib) / 1024 if kib else float("nan")
    return (rate, watches["configmaps"] - watches0["configmaps"], watches["leases"] - watches0["leases"],
            rss_of(True), rss_of(False))


def failovers(server, api, stack, command, n, rounds, window, baseline, concurrency, seed):
    """The figures of one stack at one N: steady-state load and memory, then
    `rounds` crashes and `rounds` graceful shutdowns of the leader."""
    warm_mode = "warm" in stack
    rng = random.Random(seed)
    lease = f"ctl-{stack}-{n}-{b.now_ns() % 10**6}"
    g = Replicas(server, stack, command, lease, n, concurrency)
    patience = b.PATIENCE + n / 500  # a cold start lists N objects
    figures = []
    _, watches0 = api.metrics()
    try:
        first = [g.add(), g.add()]
        leader = g.wait_leader(timeout=patience)
        if leader is None:
            raise TimeoutError(f"{lease}: no leader within {patience:.0f} s")
        for identity in first:
            g.warm(identity, warm_mode, patience)
        # The leader's first pass over N objects patches nothing, but takes
        # a while at 10,000: wait until its requests have settled.
        time.sleep(b.LEASE_MS / 1000)
        rate, cm_watches, lease_watches, rss_leader, rss_follower = steady(api, g, window, baseline, watches0)
        figures += [(f"ctl_{n}_api_load", stack, rate, "req/s"),
                    (f"ctl_{n}_configmap_watches", stack, cm_watches, "count"),
                    (f"ctl_{n}_lease_watches", stack, lease_watches, "count"),
                    (f"ctl_{n}_rss_leader", stack, rss_leader, "MiB"),
                    (f"ctl_{n}_rss_follower", stack, rss_follower, "MiB")]
        names = [f"ctl-{n}-{i:05d}" for i in range(n)]
        for crash in (True, False):
            kind = "kill" if crash else "term"
            elected, done, total, by_old = [], [], [], 0
            for r in range(rounds):
                leader = g.wait_leader(timeout=patience)
                if leader is None:
                    raise TimeoutError(f"{lease}: no leader within {patience:.0f} s")
                for identity in g.procs:
                    g.warm(identity, warm_mode, patience)
                time.sleep(b.into_term(rng))  # the signal falls at any phase of a renew cycle
                objects = rng.sample(names, CHANGED)
                value = f"{kind}-{r}-{b.now_ns()}"
                proc, signalled = g.signal(leader, crash)
                api.change(objects, value)
                who, started = g.wait_started(signalled, not_identity=leader, timeout=patience)
                if who is None:
                    raise TimeoutError(f"{lease}: no new leader within {patience:.0f} s of the {kind}")

                def all_done():
                    seen = {o for _, o, v, _ in g.reconciled if v == value}
                    return seen >= set(objects)
                g.wait(f"reconcile of the {CHANGED} changed objects", all_done, patience)
                with g.lock:
                    mine = [ts for who_, o, v, ts in g.reconciled if v == value and who_ == who]
                    by_old += sum(1 for who_, _, v, _ in g.reconciled if v == value and who_ != who)
                elected.append((started - signalled) / 1e6)
                if mine:
                    done.append((max(mine) - started) / 1e6)
                    total.append((max(mine) - signalled) / 1e6)
                try:
                    status = proc.wait(timeout=b.PATIENCE)
                    if not crash and status != 0:
                        b.failed(f"{lease}: {leader} exit status {status} after SIGTERM")
                except b.subprocess.TimeoutExpired:
                    b.failed(f"{lease}: {leader} still running {b.PATIENCE:.0f} s after SIGTERM; killed")
                    proc.kill()
                    proc.wait()
                g.add()
            print(f"# {stack} N={n} {kind}: elected " + " ".join(f"{t:.0f}" for t in elected)
                  + "; done " + " ".join(f"{t:.0f}" for t in done), file=b.sys.stderr, flush=True)
            for label, values in (("elected", elected), ("elected_to_done", done), ("to_done", total)):
                values = b.sampled(f"controller {stack} {n} {kind} {label}", values)
                figures += [(f"ctl_{n}_{kind}_{label}_median", stack,
                             statistics.median(values) if values else float("nan"), "ms"),
                            (f"ctl_{n}_{kind}_{label}_max", stack, max(values) if values else float("nan"), "ms")]
            figures += [(f"ctl_{n}_{kind}_samples", stack, len(elected), "count"),
                        (f"ctl_{n}_{kind}_done_by_old_leader", stack, by_old, "count")]
    finally:
        g.stop_all()
    return figures


def run(server, stacks, sizes, rounds, window, concurrency, seed, attempt):
    """Every stack at every N; returns the figures."""
    api = Api(server)
    figures = []
    baseline = b.baseline_load(server, window)
    for n in sizes:
        started = time.monotonic()
        api.populate(n)
        print(f"# controller: {n} ConfigMaps ready in {time.monotonic() - started:.1f} s", file=b.sys.stderr,
              flush=True)
        for stack, command in stacks.items():
            print(f"# controller {stack} N={n}", file=b.sys.stderr, flush=True)
            f = attempt(f"controller {stack} {n}", failovers, server, api, stack, command, n, rounds, window,
                        baseline, concurrency, seed)
            figures += f or []
            for fig in f or []:
                print(",".join(map(str, fig)), file=b.sys.stderr, flush=True)
    return figures

