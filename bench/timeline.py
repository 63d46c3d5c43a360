#!/usr/bin/env python3
"""Draws who led when under the partition scenario of bench.py, one panel
per implementation and one lane per elector process: terms as bars, the
partition of a leader from the API server shaded on its lane, time during
which two processes both said they led marked in red, and each round's
margin (next start - partitioned leader's stop) written above it.

Usage: timeline.py DATA.json OUT.svg   (DATA from `bench.py --timeline`; OUT.png works too)

Needs matplotlib (scripts/bench.sh installs it into a virtualenv).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
from matplotlib.patches import Patch  # noqa: E402

TERM, FAULT, OVERLAP, GAP = "#3b6ea8", "#f2b134", "#d62728", "#2ca02c"


def overlaps(terms):
    """The intervals (ns) covered by two or more terms."""
    edges = sorted([(a, 1) for _, a, _ in terms] + [(b, -1) for _, _, b in terms])
    out, depth, since = [], 0, None
    for ts, delta in edges:
        if depth >= 2 and since is not None and ts > since:
            out.append((since, ts))
        depth += delta
        since = ts
    return out


def panel(ax, data, lease_ms, renew_ms):
    begin, end = data["begin_ns"], data["end_ns"]
    lanes = data["electors"]
    sec = lambda ns: (ns - begin) / 1e9  # noqa: E731
    terms = [(who, start, min(stop if stop is not None else end, end)) for who, start, stop in data["terms"]]
    for who, start, stop in terms:
        if who in lanes:
            ax.broken_barh([(sec(start), max((stop - start) / 1e9, 0.005))], (lanes.index(who) - 0.3, 0.6),
                           color=TERM)
    for f in data["faults"]:
        lane = lanes.index(f["identity"])
        ax.broken_barh([(sec(f["from_ns"]), (f["to_ns"] - f["from_ns"]) / 1e9)], (lane - 0.45, 0.9),
                       color=FAULT, alpha=0.45, hatch="//", edgecolor="#a06d00", linewidth=0)
    total = 0.0
    for a, b in overlaps(terms):
        total += (b - a) / 1e9
        ax.axvspan(sec(a), sec(b), color=OVERLAP, alpha=0.35, linewidth=0)
    # Each round: from the partitioned leader's stop to the next start.
    margins = []
    for f, (stop_ms, start_ms, margin_ms) in zip(data["faults"], data["rows"]):
        t_stop, t_start = sec(f["from_ns"]) + stop_ms / 1000, sec(f["from_ns"]) + start_ms / 1000
        margins.append(margin_ms)
        y = len(lanes) - 0.35
        colour = GAP if margin_ms >= 0 else OVERLAP
        ax.annotate("", xy=(t_start, y), xytext=(t_stop, y),
                    arrowprops=dict(arrowstyle="<->", color=colour, lw=1.2, shrinkA=0, shrinkB=0))
        size = f"{abs(margin_ms):.0f} ms" if abs(margin_ms) < 100 else f"{abs(margin_ms) / 1000:.2f} s"
        label = f"+{size}" if margin_ms >= 0 else f"overlap {size}"
        ax.text((t_stop + t_start) / 2, y + 0.12, label, ha="center", va="bottom", fontsize=8, color=colour)
    ax.set_yticks(range(len(lanes)), [f"process {i + 1}" for i in range(len(lanes))], fontsize=8)
    ax.set_ylim(-0.6, len(lanes) + 0.25)
    if margins:
        said = f"smallest margin {min(margins) / 1000:+.2f} s"
    else:
        said = "the partitioned leader never said it stopped"
    ax.set_title(f"{data['implementation']}: {said}, two leaders for {total:.2f} s in all",
                 fontsize=10, loc="left")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return sec(end)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    impls = data["implementations"]
    plt.rcParams["svg.fonttype"] = "none"  # text stays text
    plt.rcParams["svg.hashsalt"] = "kube-elector"  # the same data draws the same file
    fig, axes = plt.subplots(len(impls), 1, figsize=(11, 1.35 + 1.25 * len(impls)), sharex=True, squeeze=False)
    longest = 0.0
    for ax, timeline in zip(axes[:, 0], impls):
        longest = max(longest, panel(ax, timeline, data["lease_ms"], data["renew_deadline_ms"]))
    axes[-1, 0].set_xlim(0, longest)
    axes[-1, 0].set_xlabel("seconds since the scenario started")
    fig.suptitle(f"Who led when: the leader of three processes partitioned from the API server, "
                 f"{len(impls[0]['rows'])} round{'' if len(impls[0]['rows']) == 1 else 's'} (lease {data['lease_ms'] / 1000:g} s, renew deadline "
                 f"{data['renew_deadline_ms'] / 1000:g} s, retry {data['retry_ms'] / 1000:g} s)",
                 fontsize=11, x=0.01, ha="left")
    fig.legend(handles=[Patch(color=TERM, label="says it leads"),
                        Patch(facecolor=FAULT, alpha=0.45, hatch="//", edgecolor="#a06d00",
                              label="partitioned (its requests hang)"),
                        Patch(color=OVERLAP, alpha=0.35, label="two processes say they lead"),
                        Patch(color=GAP, label="margin: next start − partitioned leader's stop")],
               loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(dst, metadata={"Date": None} if dst.endswith(".svg") else None)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
