"""The command scenario of bench.py (`--only command`): a workload's command
run only on the leader, by `kube-elector run` and by client-go-runner (the
design client-go sidecars share, interop/cmd/client-go-runner), each as
three replica processes over one Lease of a real kube-apiserver, every
replica's requests through its own port of the TCP fault proxy
(interop/cmd/faultproxy). The command is interop/cmd/stamp-child: it
appends its start and stop (wall clock, pid) to one file shared by all
replicas, so the figures come from the children's own timestamps, not from
the electors' logs.

Per implementation and seed, in one run:
- graceful handover: SIGTERM to the leading replica's elector process ->
  the next child's start line (the signalled replica is restarted after);
- crash takeover: SIGKILL of every process of the leader's session (each
  replica runs in a session of its own, as a container: the elector and its
  child die together) -> the next child's start line;
- chaos: partitions (healed with a reset) and hung requests (partitions
  healed keeping the connections, the held bytes delivered late) of the
  leader or of a random replica, and latency for all, drawn from the seed;
  a replica process that exits on its own is restarted at once (as the
  kubelet would);
- the orphan check: SIGKILL of the leader's elector process alone (outside
  a container: nothing kills its group): is its child still running a lease
  duration later, and for how long did it overlap the next leader's child?
- overlap: the real time during which two children ran at once, over the
  whole run of the seed except the orphan check (reported apart).

Figures, not asserts; a broken run (no leader within the deadline, a stamp
line that does not parse) is a failure of bench.py's kind.
"""

import json
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import urllib.request

PATIENCE = 30.0
POLL = 0.002  # how often a running child's pid is checked (a SIGKILLed child writes no stop line)


def now_ns():
    return time.time_ns()


def alive(pid):
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def session_pids(sid):
    """Every live process of session `sid` (a replica's elector and its
    child, whatever process group the elector put the child in)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # After the command's name: state, ppid, pgrp, session (field 6 of stat).
        if int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def median(values):
    return statistics.median(values) if values else float("nan")


class Proxy:
    """interop/cmd/faultproxy in front of the real apiserver."""

    def __init__(self, binary, upstream):
        self.proc = subprocess.Popen([binary, "--upstream", upstream], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("READY http://"):
            raise RuntimeError(f"the fault proxy did not start: {line!r}")
        self.admin = line.split()[1]

    def post(self, path, body):
        req = urllib.request.Request(self.admin + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def port_of(self, client):
        return self.post("/clients", {"name": client})["port"]

    def faults(self, target="all", **spec):
        self.post("/faults", {"target": target, **spec})

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Stamps:
    """The children, from the stamp file their command writes: pid ->
    [label, start ns, end ns or None, how it ended]. A child whose pid is
    gone without a stop line ended when a poll first found it gone (within
    POLL of its death)."""

    def __init__(self, path, failed):
        self.path, self.failed = path, failed
        open(path, "w").close()
        self.children = {}
        self.tokens = []  # (start ns, label, fencing token) in start order
        self.lock = threading.Lock()
        self.offset = 0
        self.partial = ""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.done.is_set():
            self.poll()
            time.sleep(POLL)

    def poll(self):
        with open(self.path) as f:
            f.seek(self.offset)
            data = f.read()
            self.offset = f.tell()
        text = self.partial + data
        lines = text.split("\n")
        self.partial = lines.pop()
        with self.lock:
            for line in lines:
                try:
                    s = json.loads(line)
                    pid, ts, event, label = s["pid"], s["ts_unix_nanos"], s["event"], s["label"]
                except (ValueError, KeyError, TypeError):
                    self.failed(f"command: a stamp line that does not parse: {line!r}")
                    continue
                if event == "start":
                    self.children[pid] = [label, ts, None, None]
                    self.tokens.append((ts, label, s.get("fencing_token", "")))
                elif event == "stop" and pid in self.children:
                    self.children[pid][2], self.children[pid][3] = ts, "stop line"
            t = now_ns()
            for pid, child in self.children.items():
                if child[2] is None and not alive(pid):
                    child[2], child[3] = t, "gone"

    def running(self):
        with self.lock:
            return sorted(((c[1], pid, c[0]) for pid, c in self.children.items() if c[2] is None), reverse=True)

    def first_start_after(self, t_ns, not_label):
        with self.lock:
            starts = [c[1] for c in self.children.values() if c[1] > t_ns and c[0] != not_label]
        return min(starts) if starts else None

    def overlap(self, from_ns, to_ns):
        """Seconds within [from_ns, to_ns] during which two children or more
        ran, and how many distinct overlapping spells."""
        with self.lock:
            spans = [(max(c[1], from_ns), min(c[2] or to_ns, to_ns)) for c in self.children.values()]
        points = sorted([(a, 1) for a, b in spans if b > a] + [(b, -1) for a, b in spans if b > a])
        total, depth, since, spells = 0, 0, None, 0
        for t, d in points:
            if depth >= 2 and since is not None:
                total += t - since
            depth += d
            if depth >= 2 and since is None:
                spells += 1
            since = t if depth >= 2 else None
        return total / 1e9, spells

    def stop(self):
        self.done.set()
        self.thread.join(timeout=5)
        self.poll()


class Replicas:
    """Three (or more) replica processes of one implementation over one
    Lease, each in a session of its own, each through its own proxy port;
    one that exits unasked is restarted at once, under the same name."""

    def __init__(self, impl, argv, lease, proxy, kubeconfig_text, workdir, stamps, failed):
        self.impl, self.argv, self.lease, self.proxy = impl, argv, lease, proxy
        self.kubeconfig_text, self.workdir, self.stamps, self.failed = kubeconfig_text, workdir, stamps, failed
        self.procs = {}
        self.stopping = set()
        self.restarts = 0
        self.exits = []  # (name, status) of processes that ended unasked
        self.lock = threading.Lock()
        self.closed = False

    def kubeconfig(self, name):
        path = os.path.join(self.workdir, f"{self.lease}-{name}.kubeconfig")
        if not os.path.exists(path):
            port = self.proxy.port_of(f"{self.lease}-{name}")
            lines = [f"    server: https://127.0.0.1:{port}" if line.strip().startswith("server:") else line
                     for line in self.kubeconfig_text.splitlines()]
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
        return path

    def spawn(self, name):
        kubeconfig = self.kubeconfig(name)
        argv = self.argv(self.lease, name, kubeconfig) + ["--", self.stamps_child, self.stamps.path, name]
        log = open(os.path.join(self.workdir, f"{self.lease}-{name}.log"), "a")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "KUBECONFIG": kubeconfig, "RUST_LOG": os.environ.get("RUST_LOG", "info")})
        with self.lock:
            self.procs[name] = proc
            self.stopping.discard(name)
        threading.Thread(target=self._watch, args=(name, proc), daemon=True).start()
        return proc

    def _watch(self, name, proc):
        status = proc.wait()
        with self.lock:
            unasked = not self.closed and name not in self.stopping and self.procs.get(name) is proc
            if unasked:
                self.exits.append((name, status))
                self.restarts += 1
        if unasked:
            # What a kubelet does for a container that exited (without its backoff).
            self.spawn(name)

    def leader(self, deadline=PATIENCE):
        """The replica whose child runs, once exactly one runs."""
        end = time.time() + deadline
        while time.time() < end:
            running = self.stamps.running()
            if len(running) == 1 and running[0][2] in self.procs:
                return running[0][2]
            time.sleep(0.01)
        return None

    def wait_start_after(self, t_ns, not_label, deadline=PATIENCE):
        end = time.time() + deadline
        while time.time() < end:
            start = self.stamps.first_start_after(t_ns, not_label)
            if start is not None:
                return start
            time.sleep(0.005)
        return None

    def signal_elector(self, name, sig):
        with self.lock:
            self.stopping.add(name)
            proc = self.procs[name]
        t0 = now_ns()
        proc.send_signal(sig)
        return proc, t0

    def kill_session(self, name):
        with self.lock:
            self.stopping.add(name)
            proc = self.procs[name]
        pids = session_pids(proc.pid)
        t0 = now_ns()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc, t0

    def stop_all(self):
        with self.lock:
            self.closed = True
            procs = dict(self.procs)
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.failed(f"command {self.impl}: {name} still running 15 s after SIGTERM; killed")
            for pid in session_pids(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def chaos(replicas, proxy, seed, seconds, notes):
    """Partitions and hung requests (and latency for all) for `seconds`,
    drawn from `seed`; every fault is undone before the next."""
    rng = random.Random(seed)
    end = time.time() + seconds
    names = sorted(replicas.procs)
    while time.time() < end:
        hold = rng.uniform(0.3, 2.5)
        action = rng.choice(["partition-leader", "partition-one", "hang-leader", "hang-one", "latency"])
        running = replicas.stamps.running()
        leader = running[0][2] if running else None
        who = leader if action.endswith("leader") and leader else rng.choice(names)
        target = f"{replicas.lease}-{who}"
        notes.append(f"{time.time():.3f} {action} {who if action != 'latency' else 'all'} {hold:.2f}s")
        if action.startswith("partition"):
            proxy.faults(target, partition=True)
            time.sleep(hold)
            proxy.faults(target, partition=False, reset=True)
        elif action.startswith("hang"):
            proxy.faults(target, partition=True)
            time.sleep(hold)
            proxy.faults(target, partition=False)
        else:
            proxy.faults("all", latency_ms=rng.randint(25, 300))
            time.sleep(hold)
            proxy.faults("all", latency_ms=0)
        time.sleep(rng.uniform(0.1, 1.0))
    proxy.faults("all", clear=True)


def run_seed(impl, argv, seed, plan, env, failed):
    """One implementation, one seed: the figures of bench.py's kind."""
    lease = f"cmd-{impl}-{seed}-{now_ns() % 10**6}"
    stamps = Stamps(os.path.join(env["workdir"], f"{lease}.stamps"), failed)
    replicas = Replicas(impl, argv, lease, env["proxy"], env["kubeconfig_text"], env["workdir"], stamps, failed)
    replicas.stamps_child = env["stamp_child"]
    out = {"handover_ms": [], "crash_ms": [], "exit_codes": [], "notes": []}
    began = now_ns()
    try:
        replicas.spawn("r1")
        if replicas.leader() is None:
            failed(f"command {impl} seed {seed}: no child ran within {PATIENCE:.0f} s of the first replica's start")
            return out
        replicas.spawn("r2")
        replicas.spawn("r3")
        time.sleep(env["lease_s"])  # both campaign (there is nothing of theirs to wait for)

        for _ in range(plan["graceful"]):
            leader = replicas.leader()
            if leader is None:
                failed(f"command {impl} seed {seed}: no single leader before a graceful handover")
                break
            proc, t0 = replicas.signal_elector(leader, signal.SIGTERM)
            start = replicas.wait_start_after(t0, leader)
            if start is None:
                failed(f"command {impl} seed {seed}: no child started within {PATIENCE:.0f} s of SIGTERM to {leader}")
                break
            out["handover_ms"].append((start - t0) / 1e6)
            try:
                out["exit_codes"].append(proc.wait(timeout=15))
            except subprocess.TimeoutExpired:
                failed(f"command {impl} seed {seed}: {leader} still running 15 s after SIGTERM")
                replicas.kill_session(leader)
            replicas.spawn(leader)
            time.sleep(env["lease_s"])

        for _ in range(plan["crash"]):
            leader = replicas.leader()
            if leader is None:
                failed(f"command {impl} seed {seed}: no single leader before a crash")
                break
            proc, t0 = replicas.kill_session(leader)
            start = replicas.wait_start_after(t0, leader)
            if start is None:
                failed(f"command {impl} seed {seed}: no child started within {PATIENCE:.0f} s of the crash of {leader}")
                break
            out["crash_ms"].append((start - t0) / 1e6)
            proc.wait()
            replicas.spawn(leader)
            time.sleep(env["lease_s"])

        chaos_from = now_ns()
        before = len(stamps.children)
        chaos(replicas, env["proxy"], seed, plan["chaos_s"], out["notes"])
        chaos_to = now_ns()
        out["chaos_children"] = len(stamps.children) - before
        out["chaos_overlap_s"], out["chaos_spells"] = stamps.overlap(chaos_from, chaos_to)
        leader = replicas.leader(deadline=PATIENCE)
        out["leader_after_chaos"] = leader is not None
        if leader is None:
            failed(f"command {impl} seed {seed}: no single leader {PATIENCE:.0f} s after the chaos")
        out["restarts"], out["unasked_exits"] = replicas.restarts, list(replicas.exits)

        # The orphan check: the elector alone is SIGKILLed.
        until = now_ns()
        out["overlap_s"], out["spells"] = stamps.overlap(began, until)
        if leader is not None:
            with replicas.lock:
                replicas.stopping.add(leader)
                proc = replicas.procs[leader]
            child = next((pid for _, pid, label in stamps.running() if label == leader), None)
            t0 = now_ns()
            proc.kill()
            proc.wait()
            next_start = replicas.wait_start_after(t0, leader)
            # A lease duration and more after the next child started (or
            # the deadline): is the old one still there?
            time.sleep(env["lease_s"])
            out["orphan_alive"] = child is not None and alive(child)
            out["orphan_next_start_ms"] = None if next_start is None else (next_start - t0) / 1e6
            stamps.poll()
            out["orphan_overlap_s"], _ = stamps.overlap(t0, now_ns())
            for pid in session_pids(proc.pid):
                os.kill(pid, signal.SIGKILL)
            if child is not None and alive(child):
                os.kill(child, signal.SIGKILL)  # nothing should be left; a child that called setsid would be
        # A term's fencing token never goes back; a child restarted within
        # one term (stopped as renews failed, then renewed in time) has
        # its term's token again.
        tokens = [int(t) for _, _, t in stamps.tokens if t.isdigit()]
        out["tokens_monotonic"] = None if not tokens else all(a <= b for a, b in zip(tokens, tokens[1:]))
        out["tokens_repeated"] = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
        out["children"] = len(stamps.children)
    finally:
        replicas.stop_all()
        stamps.stop()
    return out


def run(impls, seeds, plan, env, failed, log):
    """Every implementation (name -> argv builder) over `seeds`; returns
    bench.py's figures (figure, implementation, value, unit)."""
    figures = []
    lease_ms = env["lease_s"] * 1000
    for name, argv in impls.items():
        results = []
        for seed in seeds:
            log(f"# command {name}: seed {seed}")
            r = run_seed(name, argv, seed, plan, env, failed)
            results.append(r)
            log(f"#   handover ms {[round(v, 1) for v in r['handover_ms']]}, crash ms "
                f"{[round(v, 1) for v in r['crash_ms']]}, overlap {r.get('overlap_s', float('nan')):.3f} s "
                f"({r.get('spells', 0)} spells; chaos {r.get('chaos_overlap_s', float('nan')):.3f} s over "
                f"{r.get('chaos_children', 0)} children), restarts {r.get('restarts', 0)}, exit codes "
                f"{r['exit_codes']}, orphan alive {r.get('orphan_alive')}, orphan overlap "
                f"{r.get('orphan_overlap_s', float('nan')):.3f} s")
            if os.environ.get("BENCH_LOG_DIR"):
                for note in r["notes"]:
                    log(f"#     {note}")
        handovers = [v for r in results for v in r["handover_ms"]]
        crashes = [v for r in results for v in r["crash_ms"]]
        overlaps = [r["overlap_s"] for r in results if "overlap_s" in r]
        figures += [
            ("command_handover_median", name, median(handovers), "ms"),
            ("command_handover_max", name, max(handovers, default=float("nan")), "ms"),
            ("command_crash_takeover_median", name, median(crashes), "ms"),
            ("command_crash_takeover_max", name, max(crashes, default=float("nan")), "ms"),
            ("command_crash_minus_lease_max", name, max(crashes, default=float("nan")) - lease_ms, "ms"),
            ("command_overlap_max_seed", name, max(overlaps, default=float("nan")), "s"),
            ("command_overlap_seeds_with_any", name, sum(1 for o in overlaps if o > 0), f"of {len(overlaps)}"),
            ("command_overlap_total", name, sum(overlaps), "s"),
            ("command_chaos_children", name, sum(r.get("chaos_children", 0) for r in results), "count"),
            ("command_restarts", name, sum(r.get("restarts", 0) for r in results), "count"),
            ("command_graceful_exit_codes", name, " ".join(str(c) for r in results for c in r["exit_codes"]), ""),
            ("command_orphan_alive_after_sigkill", name,
             " ".join(str(r.get("orphan_alive")) for r in results), ""),
            ("command_orphan_overlap_max", name,
             max((r["orphan_overlap_s"] for r in results if "orphan_overlap_s" in r), default=float("nan")), "s"),
            ("command_fencing_tokens_never_decrease", name,
             " ".join(str(r.get("tokens_monotonic")) for r in results), ""),
            ("command_child_restarts_within_a_term", name, sum(r.get("tokens_repeated", 0) for r in results), "count"),
        ]
    return figures
