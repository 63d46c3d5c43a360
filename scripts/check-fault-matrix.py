#!/usr/bin/env python3
"""Checks the fault matrix of docs/guide/safety.md against the code.

The matrix has one row per protocol and one column per fault class. A cell
holds numbers of attacks (`3`, `3, 17`), letters of reasons the fault cannot
happen there (`c`), or `gap` (the work list). Below the matrix:

- each attack is a line `N. `file::test`` (a test of `tests/file.rs`) or
  `N. `path/to/file.rs::test`` (a unit test); the test must exist there as
  a `#[test]` / `#[tokio::test]` function, and every attack must be used;
- each reason is a line `x. ...` that cites the code making the fault
  impossible as `path/to/file.rs` or `path/to/file.rs::symbol`; the file must
  exist and, with `::symbol`, mention the symbol.

Prints the gaps, and exits 1 on anything unresolved: an unknown number or
letter, an empty cell, a missing test or file, a row or column missing.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide" / "safety.md"

PROTOCOLS = [
    "plain election",
    "LeaseLock",
    "hub line and successor",
    "directed handover",
    "coordinated election",
    "shard membership",
    "shard ownership as users see it",
    "observer",
    "leader-gated controller",
    "kube-elector run (the child)",
]
FAULTS = [
    "partition",
    "hung request",
    "latency",
    "watch lag",
    "silent watch",
    "erroring watch",
    "lost and late write answers",
    "stale reads",
    "outside writer",
    "twins",
    "frozen and skewed clocks",
    "blocked runtime",
    "server restart and 410",
    "settings that differ between replicas",
]

TEST_FN = re.compile(
    r"#\[(?:tokio::)?test[^\n]*\][^\n]*\n(?:\s*(?:#\[[^\n]*\]|//)[^\n]*\n)*\s*(?:async\s+)?fn\s+(\w+)"
)


def tests_in(path: Path) -> set[str]:
    return set(TEST_FN.findall(path.read_text()))


def section(text: str) -> str:
    start = text.find("## The fault matrix")
    if start < 0:
        sys.exit(f"{GUIDE}: no '## The fault matrix' section")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def main() -> int:
    text = section(GUIDE.read_text())
    errors: list[str] = []

    rows = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    faults = [h.replace("**", "") for h in header[1:]]
    if faults != FAULTS:
        errors.append(f"columns are {faults}, expected {FAULTS}")
    cells: dict[tuple[str, str], list[str]] = {}
    for row in rows[2:]:
        parts = [c.strip() for c in row.strip("|").split("|")]
        protocol = parts[0].replace("**", "").replace("`", "")
        for fault, cell in zip(FAULTS, parts[1:]):
            tokens = [t.strip() for t in cell.split(",") if t.strip()]
            if not tokens:
                errors.append(f"empty cell: {protocol} × {fault} (write `gap` if it is one)")
            cells[(protocol, fault)] = tokens
        if len(parts) - 1 != len(FAULTS):
            errors.append(f"row '{protocol}' has {len(parts) - 1} cells, expected {len(FAULTS)}")
    protocols = sorted({p for p, _ in cells})
    for p in PROTOCOLS:
        if p not in protocols:
            errors.append(f"no row for '{p}'")

    attacks: dict[str, str] = {}
    for n, ref in re.findall(r"^(\d+)\. `([^`]+)`", text, re.M):
        attacks[n] = ref
    reasons: dict[str, str] = {}
    for x, line in re.findall(r"^([a-z])\. (.+)$", text, re.M):
        reasons[x] = line

    cache: dict[Path, set[str]] = {}
    for n, ref in attacks.items():
        if "::" not in ref:
            errors.append(f"attack {n}: '{ref}' is not file::test")
            continue
        file, name = ref.rsplit("::", 1)
        path = ROOT / file if file.endswith(".rs") else ROOT / "tests" / f"{file}.rs"
        if not path.is_file():
            errors.append(f"attack {n}: no file {path.relative_to(ROOT)}")
            continue
        if path not in cache:
            cache[path] = tests_in(path)
        if name not in cache[path]:
            errors.append(f"attack {n}: no test fn {name} in {path.relative_to(ROOT)}")
    for x, line in reasons.items():
        cited = re.findall(r"`((?:src|kube-elector-testing|tests)/[\w/.-]+\.rs)(?:::(\w+))?`", line)
        if not cited:
            errors.append(f"reason {x}: cites no code (`src/....rs` or `src/....rs::symbol`)")
        for file, symbol in cited:
            path = ROOT / file
            if not path.is_file():
                errors.append(f"reason {x}: no file {file}")
            elif symbol and symbol not in path.read_text():
                errors.append(f"reason {x}: {file} does not mention {symbol}")

    used: set[str] = set()
    gaps: list[str] = []
    for (protocol, fault), tokens in sorted(cells.items()):
        for t in tokens:
            if t == "gap":
                gaps.append(f"{protocol} × {fault}")
            elif t.isdigit():
                used.add(t)
                if t not in attacks:
                    errors.append(f"{protocol} × {fault}: no attack numbered {t}")
            elif re.fullmatch(r"[a-z]", t):
                used.add(t)
                if t not in reasons:
                    errors.append(f"{protocol} × {fault}: no reason lettered {t}")
            else:
                errors.append(f"{protocol} × {fault}: '{t}' is not a number, a letter or gap")
    for key in list(attacks) + list(reasons):
        if key not in used:
            errors.append(f"{key} is listed but no cell uses it")

    covered = sum(1 for tokens in cells.values() if tokens and "gap" not in tokens)
    print(
        f"fault matrix: {len(cells)} cells, {covered} attacked or impossible, "
        f"{len(gaps)} gaps; {len(attacks)} tests named, all present"
        if not errors
        else f"fault matrix: {len(errors)} problems"
    )
    for g in gaps:
        print(f"  gap: {g}")
    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
