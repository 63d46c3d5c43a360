# A Python with matplotlib, for bench/timeline.py; sourced by scripts/bench.sh
# and .ci/run. The sourcing script defines `log`.

# matplotlib_python DIR: prints the path of a Python that imports
# matplotlib: the system's python3 if it does, else DIR/bin/python of a
# virtualenv made in DIR (and matplotlib installed from PyPI) if needed.
# Fails if neither works.
matplotlib_python() {
  local venv=$1
  if python3 -c 'import matplotlib' 2>/dev/null; then
    echo python3
    return 0
  fi
  if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib into $venv"
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q matplotlib >&2 || return 1
  fi
  echo "$venv/bin/python"
}
