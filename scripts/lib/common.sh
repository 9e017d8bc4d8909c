# shellcheck shell=bash
# Helpers shared by the scripts in scripts/: logging, locating Python, the cache, venvs, apt.
# Sourced, not executed: the caller sets `set -euo pipefail` itself.

# The repository root, whatever directory the caller runs from.
MILOCO_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# Everything large (venvs, wheels, the Debian-testing root filesystem, logs) lives outside the repository
# so that a fresh clone (CI) reuses it and `git clean` never has to walk through it.
MILOCO_CACHE="${MILOCO_CACHE:-$HOME/.cache/miloco}"
export MILOCO_REPO MILOCO_CACHE
# No __pycache__ in the repository or the caches; a suite never reads stale bytecode of another Python.
export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
# chroot, debootstrap and apt's helpers live in sbin, which a minimal PATH (cron, CI) may leave out.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;; esac
# Let `x="$(f)"` fail the script when f fails, as `set -e` promises but bash does not do by default.
shopt -s inherit_errexit

log() { printf '[miloco] %s\n' "$*" >&2; }
die() { printf '[miloco] ERROR: %s\n' "$*" >&2; exit 1; }

# sha256 of the given files' contents (and names, so renaming a file changes the key), first 12 hex digits.
hash_files() {
  local f
  for f in "$@"; do
    [[ -r "$f" ]] || die "cannot read $f"
    printf '%s\n' "$(basename "$f")"
    cat "$f"
  done | sha256sum | cut -c1-12
}

# Run a command holding an exclusive lock named $1, so that two scripts (or the two suites run in
# parallel) never build the same venv, wheel or root filesystem at the same time.
with_lock() {
  local name="$1"
  shift
  mkdir -p "$MILOCO_CACHE/locks"
  (
    flock 9
    "$@"
  ) 9>"$MILOCO_CACHE/locks/$name.lock"
}

# find_python MIN [BELOW]: print the path of a Python >= MIN (default 3.13) and < BELOW (if given).
# Each candidate is executed: pyenv shims exist on PATH and fail in directories without a
# .python-version, so `command -v` alone proves nothing.
find_python() {
  local min="${1:-3.13}" below="${2:-99}" candidate resolved dir
  local -a candidates=(python3.14 python3.13 python3)
  for dir in /root/.pyenv/versions/3.1[3-9]* "$HOME"/.pyenv/versions/3.1[3-9]*; do
    [[ -x "$dir/bin/python3" ]] && candidates+=("$dir/bin/python3")
  done
  local check="import sys; v = lambda s: tuple(map(int, s.split('.')));"
  check+=" sys.exit(0 if v('$min') <= sys.version_info[:3] < v('$below') else 1)"
  for candidate in "${candidates[@]}"; do
    resolved="$(command -v "$candidate" 2>/dev/null)" || continue
    if "$resolved" -c "$check" >/dev/null 2>&1; then
      # Resolve pyenv shims to the real interpreter so that venvs do not depend on the shim.
      "$resolved" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

# Install Debian packages that are missing. As root (this project's machines and CI) install them;
# otherwise say what to install and go on, since the scripts can still mostly work without them.
apt_ensure() {
  local pkg
  local -a missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [[ $EUID -ne 0 ]]; then
    log "please install: sudo apt-get install ${missing[*]}"
    return 0
  fi
  log "apt-get install ${missing[*]}"
  # A fresh machine's package lists may be empty or stale: update once per script run.
  if [[ -z "${MILOCO_APT_UPDATED:-}" ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    export MILOCO_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv NAME PYTHON REQUIREMENTS... : print the path of a venv with the requirements installed.
# The venv lives at $MILOCO_CACHE/venvs/NAME-<hash of the requirements>, so editing a requirements file
# gives a new venv, and the old one can simply be deleted. The marker file is written only after a
# successful install: an interrupted install leaves no marker and is redone from scratch.
ensure_venv() {
  local name="$1" python="$2"
  shift 2
  local dir
  dir="$MILOCO_CACHE/venvs/$name-$(hash_files "$@")"
  if [[ ! -f "$dir/.miloco-complete" ]]; then
    with_lock "venv-$name" _build_venv "$dir" "$python" "$@"
  fi
  printf '%s\n' "$dir"
}

_build_venv() {
  local dir="$1" python="$2"
  shift 2
  [[ -f "$dir/.miloco-complete" ]] && return 0 # another process built it while we waited for the lock
  log "creating $dir (a few minutes the first time)"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  local -a req_args=()
  local f
  for f in "$@"; do req_args+=(-r "$f"); done
  # The llama-cpp-python wheel built by llama.sh lives in the wheels dir; never compile it again here.
  mkdir -p "$MILOCO_CACHE/wheels"
  "$dir/bin/python" -m pip install -q --find-links "$MILOCO_CACHE/wheels" --only-binary llama-cpp-python \
    "${req_args[@]}" >&2
  touch "$dir/.miloco-complete"
}
