#!/usr/bin/env python3
"""Where a graceful handover's time goes, from kube-elector's own logs.

Run the bench's graceful scenario with the processes' logs kept:

    BENCH_LOG_DIR=DIR RUST_LOG=kube_elector=trace scripts/bench.sh --only graceful
    python3 bench/handover_breakdown.py DIR

For every handover of the `graceful-kube-elector` Lease it pairs the
leader's lines with the next leader's (wall clock of one machine) and prints
the medians of each step:

- stop -> release sent: the leader's term ended (its `stopped leading`
  line, written as the shutdown begins) until its release PUT is built;
- release sent -> acquire sent: the release applied, carried by the watch
  to the next leader, and judged there;
- acquire sent -> started: the acquire PUT's round trip;
- release sent -> release answered: the leader's own PUT round trip, for
  comparison.
"""
import datetime
import glob
import os
import re
import statistics
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"^(\S+)\s+(\w+)\s+.*?identity=([\w.-]+)\}: \S+: (.*)$")


def when(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000.0


def lines(directory, lease):
    out = []
    for path in glob.glob(os.path.join(directory, f"{lease}-*.log")):
        with open(path) as f:
            for line in f:
                m = LINE.match(ANSI.sub("", line).strip())
                if m:
                    out.append((when(m.group(1)), m.group(3), m.group(4)))
    return sorted(out)


def breakdown(events):
    rounds = []
    for i, (t, who, text) in enumerate(events):
        if not text.startswith("stopped leading reason=shutting down"):
            continue
        later = events[i + 1:]
        sent = next((u for u, w, x in later if w == who and x.startswith("releasing the Lease")), None)
        answered = next((u for u, w, x in later if w == who and x.startswith("released the Lease")), None)
        start = next(((u, w) for u, w, x in later if w != who and x.startswith("started leading")), None)
        if sent is None or start is None:
            continue
        acquire = [u for u, w, x in later if w == start[1] and "verdict=Acquire" in x and u <= start[0]]
        if not acquire:
            continue
        rounds.append({
            "stop -> release sent": sent - t,
            "release sent -> acquire sent": acquire[-1] - sent,
            "acquire sent -> started": start[0] - acquire[-1],
            "stop -> started": start[0] - t,
            "release sent -> release answered": (answered - sent) if answered else float("nan"),
        })
    return rounds


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_LOG_DIR", ".")
    lease = sys.argv[2] if len(sys.argv) > 2 else "graceful-kube-elector"
    rounds = breakdown(lines(directory, lease))
    if not rounds:
        raise SystemExit(f"no handover found in {directory} (run with RUST_LOG=kube_elector=trace)")
    print(f"{len(rounds)} handovers of {lease} (ms; median, max)")
    for step in rounds[0]:
        values = [r[step] for r in rounds if r[step] == r[step]]
        print(f"  {step:34} {statistics.median(values):8.2f} {max(values):9.2f}")


if __name__ == "__main__":
    main()
