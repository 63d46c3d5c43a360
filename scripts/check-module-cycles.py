#!/usr/bin/env python3
"""Finds import cycles between the modules (files) of a Rust crate.

    scripts/check-module-cycles.py src kube-elector-testing/src

What it resolves, for each crate root given (a folder with lib.rs):

- every path that names an item of the crate: in `use` declarations (braces
  expanded, `as` renames kept apart) and written inline (`crate::record::after`,
  `super::Member`), relative to the module it appears in (`crate::`,
  `super::`, `self::`, or a child module's name);
- each path to the module that *defines* the item: a path through a
  re-export (`pub use`, `pub(crate) use`, also `lib.rs`'s) is followed to
  the file where the item is written, and the re-export itself is no
  dependency of the module that makes it, so a re-export closes no cycle
  and hides none;
- code behind every feature is read (a cfg changes no edge here); test
  code is left out: `tests.rs` files and `#[cfg(test)] mod tests` blocks
  may import anything.

A dependency of a module on itself or on a module it declares (`mod x;`
then `x::Y`) still counts: a parent that uses its child while the child
uses the parent is a cycle. Prints each cycle (a strongly connected set of
modules) with the names that tie it, and exits 1 if there is one that
`--known` does not list.
"""

import re
import sys
from pathlib import Path

ITEM = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?(?:const\s+)?"
    r"(?:struct|enum|fn|trait|type|const|static|union|mod)\s+(\w+)",
    re.M,
)
MACRO = re.compile(r"macro_rules!\s+(\w+)")
USE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
INLINE = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def strip_tests(text: str) -> str:
    m = re.search(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod\s+tests\s*\{", text)
    if not m:
        return text
    depth, i = 0, m.end() - 1
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[: m.start()] + text[i + 1 :]
        i += 1
    return text[: m.start()]


def expand(tree: str) -> list[tuple[str, str]]:
    """`a::{b, c::{d as e}}` -> [("a::b", "b"), ("a::c::d", "e")]."""
    # Renames survive as `a@b` (whitespace then goes).
    tree = re.sub(r"\s+as\s+", "@", tree.strip())
    tree = re.sub(r"\s+", "", tree)
    out: list[tuple[str, str]] = []

    def walk(prefix: str, t: str) -> None:
        if t.endswith("}") and "{" in t:
            head, body = t.split("{", 1)
            body = body[:-1]
            parts, depth, cur = [], 0, ""
            for ch in body:
                if ch == "," and depth == 0:
                    parts.append(cur)
                    cur = ""
                    continue
                depth += ch == "{"
                depth -= ch == "}"
                cur += ch
            if cur:
                parts.append(cur)
            for p in parts:
                walk(prefix + head, p)
            return
        name, _, alias = t.partition("@")
        path = (prefix + name).rstrip(":")
        if path.endswith("::self"):
            path = path[: -len("::self")]
        last = path.split("::")[-1]
        out.append((path, alias or last))

    walk("", tree)
    return out


class Crate:
    def __init__(self, root: Path):
        self.root = root
        self.modules: dict[str, Path] = {}
        for path in sorted(root.rglob("*.rs")):
            rel = path.relative_to(root)
            if rel.name == "tests.rs" or "tests" in rel.parts[:-1]:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] in ("lib", "main") and len(parts) == 1:
                parts = []
            elif parts[-1] == "mod":
                parts = parts[:-1]
            self.modules["::".join(["crate", *parts])] = path
        self.text = {
            m: strip_tests(strip_comments(p.read_text())) for m, p in self.modules.items()
        }
        self.defs = {
            m: set(ITEM.findall(t)) | set(MACRO.findall(t)) for m, t in self.text.items()
        }
        # name -> full path, for every `use` of a module (re-exports among them)
        self.uses: dict[str, dict[str, str]] = {}
        for m, t in self.text.items():
            table = {}
            for _vis, tree in USE.findall(t):
                for path, name in expand(tree):
                    full = self.absolute(m, path)
                    if full:
                        table[name] = full
            self.uses[m] = table

    def absolute(self, module: str, path: str) -> str | None:
        segs = path.split("::")
        if segs[0] == "crate":
            return path
        if segs[0] == "self":
            return "::".join([module, *segs[1:]])
        if segs[0] == "super":
            base = module.split("::")
            while segs and segs[0] == "super":
                base = base[:-1]
                segs = segs[1:]
            return "::".join([*base, *segs])
        child = f"{module}::{segs[0]}"
        if child in self.modules:
            return "::".join([module, *segs])
        return None  # another crate, or a name in scope

    def resolve(self, path: str, seen: frozenset = frozenset()) -> str | None:
        """The module that defines what `path` names."""
        if path in seen:
            return None
        segs = path.split("::")
        for cut in range(len(segs), 0, -1):
            module = "::".join(segs[:cut])
            if module in self.modules:
                rest = segs[cut:]
                if not rest:
                    return module
                name = rest[0]
                if name in self.defs[module]:
                    return module
                if name in self.uses[module]:
                    target = self.uses[module][name]
                    return self.resolve("::".join([target, *rest[1:]]), seen | {path})
                if name == "*":
                    return module
                return module
        return None

    def edges(self) -> dict[str, dict[str, set[str]]]:
        out: dict[str, dict[str, set[str]]] = {m: {} for m in self.modules}
        for m, t in self.text.items():
            # A re-export (`pub use`) is transparent: whoever names the item
            # through it depends on the defining module, the re-exporter
            # does not.
            paths = [p for vis, tree in USE.findall(t) if not vis for p, _n in expand(tree)]
            body = USE.sub("", t)
            paths += INLINE.findall(body)
            for path in paths:
                full = self.absolute(m, path)
                if not full:
                    continue
                target = self.resolve(full)
                if target and target != m:
                    out[m].setdefault(target, set()).add(full.split("::")[-1])
        return out


def cycles(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            strong(v)
    return out


def main(args: list[str]) -> int:
    """`[--known "m1 m2 ..."] ROOT...`: a cycle within the known modules is
    reported but does not fail (the work list, shrinking); any other fails."""
    known: set[str] = set()
    roots = []
    while args:
        arg = args.pop(0)
        if arg == "--known":
            known |= set(args.pop(0).split())
        else:
            roots.append(arg)
    found = 0
    for root in roots or ["src"]:
        crate = Crate(Path(root))
        edges = crate.edges()
        loops = cycles(edges)
        n = sum(len(e) for e in edges.values())
        print(f"{root}: {len(crate.modules)} modules, {n} dependencies, {len(loops)} cycles")
        for comp in loops:
            members = set(comp)
            tolerated = members <= known
            found += not tolerated
            label = "known cycle" if tolerated else "cycle"
            print(f"  {label} of {len(comp)}: {', '.join(comp)}")
            for a in comp:
                for b, names in sorted(edges[a].items()):
                    if b in members:
                        print(f"    {a} -> {b}: {', '.join(sorted(names))}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
