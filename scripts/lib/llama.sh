# shellcheck shell=bash
# llama-cpp-python: PyPI has only its source distribution, and compiling llama.cpp takes about six minutes
# on two cores, so the scripts build one wheel, keep it in $MILOCO_CACHE/wheels and install it everywhere
# (the wheel is py3-none: the same file serves Python 3.13 on the host and 3.14 in the root filesystem).
# Needs common.sh.

MILOCO_WHEELS="$MILOCO_CACHE/wheels"
# The single place that names the version: requirements/llama.txt.
LLAMA_VERSION="$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' "$MILOCO_REPO/requirements/llama.txt")"
[[ -n "$LLAMA_VERSION" ]] || die "no llama-cpp-python==X pin in requirements/llama.txt"

# llama.cpp is compiled with -march=native: a wheel built on one CPU can die of an illegal instruction on
# another. The wheel's sidecar records a hash of the CPU flags it was built with; a different CPU rebuilds.
_cpu_key() { grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12; }
_llama_sidecar() { printf '%s\n' "$MILOCO_WHEELS/llama_cpp_python-$LLAMA_VERSION.cpu"; }
_llama_wheel_path() {
  compgen -G "$MILOCO_WHEELS/llama_cpp_python-$LLAMA_VERSION-*.whl" | head -n1
}

# ensure_llama_wheel PYTHON: print the path of a llama-cpp-python wheel built for this CPU.
ensure_llama_wheel() {
  local python="$1" wheel
  wheel="$(_llama_wheel_path || true)"
  if [[ -n "$wheel" && ! -f "$(_llama_sidecar)" ]]; then
    # A wheel without a sidecar was built by hand on this machine (pip wheel -w $MILOCO_WHEELS): adopt it.
    _cpu_key >"$(_llama_sidecar)"
  fi
  if [[ -z "$wheel" || "$(cat "$(_llama_sidecar)")" != "$(_cpu_key)" ]]; then
    with_lock llama-wheel _build_llama_wheel "$python"
    wheel="$(_llama_wheel_path)"
  fi
  printf '%s\n' "$wheel"
}

_build_llama_wheel() {
  local python="$1" old tmp
  old="$(_llama_wheel_path || true)"
  if [[ -n "$old" && "$(cat "$(_llama_sidecar)" 2>/dev/null)" == "$(_cpu_key)" ]]; then
    return 0 # another process built it while we waited for the lock
  fi
  if [[ -n "${MILOCO_IN_ROOTFS:-}" ]]; then
    die "no llama-cpp-python wheel for this CPU in $MILOCO_WHEELS: build it on the host (scripts/test)"
  fi
  apt_ensure build-essential cmake
  log "building llama-cpp-python $LLAMA_VERSION (compiles llama.cpp: about 6 minutes on 2 cores)"
  mkdir -p "$MILOCO_WHEELS"
  tmp="$(mktemp -d "$MILOCO_WHEELS/.build.XXXXXX")"
  # --no-cache-dir: pip's own wheel cache may hold a build made for another CPU.
  if ! "$python" -m pip wheel -q --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_VERSION" -w "$tmp" >&2; then
    rm -rf "$tmp"
    die "building llama-cpp-python failed"
  fi
  [[ -n "$old" ]] && rm -f "$old"
  # Move the finished wheel in at once, so no reader ever sees a half-written file.
  mv "$tmp"/llama_cpp_python-*.whl "$MILOCO_WHEELS/"
  rm -rf "$tmp"
  _cpu_key >"$(_llama_sidecar)"
}

# install_llama_into_venv VENV WHEEL: install the wheel and its dependencies into VENV without moving any
# package that VENV already pins (Home Assistant's numpy, jinja2, typing-extensions...).
install_llama_into_venv() {
  local venv="$1" wheel="$2"
  [[ -f "$(_llama_marker "$venv" "$wheel")" ]] && return 0
  # Two scripts at once (a suite and scripts/develop, or two checkouts) would each pip-install into the
  # same venv and trip over each other's half-written files.
  with_lock "llama-install-$(basename "$venv")" _install_llama_into_venv "$venv" "$wheel"
}

_llama_marker() { printf '%s\n' "$1/.miloco-llama-$(sha256sum "$2" | cut -c1-12)"; }

_install_llama_into_venv() {
  local venv="$1" wheel="$2" marker constraints
  marker="$(_llama_marker "$venv" "$wheel")"
  [[ -f "$marker" ]] && return 0 # another process installed it while we waited for the lock
  log "installing $(basename "$wheel") into $venv"
  constraints="$venv/.miloco-constraints.txt"
  # Everything installed now becomes a constraint (pip list prints name==version even for direct URLs).
  "$venv/bin/python" -m pip list --format=freeze --exclude llama-cpp-python >"$constraints"
  # --force-reinstall --no-deps: a rebuilt wheel of the same version must replace the old build.
  "$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel" >&2
  "$venv/bin/python" -m pip install -q -c "$constraints" --find-links "$MILOCO_WHEELS" \
    --only-binary llama-cpp-python "llama-cpp-python==$LLAMA_VERSION" >&2
  rm -f "$venv"/.miloco-llama-*
  touch "$marker"
}

# ensure_llama_server_venv PYTHON WHEEL: print the path of a venv with llama-cpp-python[server]. It is
# separate from the HA venvs so that fastapi/uvicorn/pydantic-settings never touch HA's pins; tests start
# the OpenAI-compatible server with this venv's python (MILOCO_LLAMA_SERVER_PYTHON).
ensure_llama_server_venv() {
  local python="$1" wheel="$2" venv minor
  grep -q "^llama-cpp-python\[server\]==$LLAMA_VERSION\$" "$MILOCO_REPO/requirements/llama-server.txt" ||
    die "requirements/llama-server.txt must pin llama-cpp-python[server]==$LLAMA_VERSION (requirements/llama.txt)"
  minor="$("$python" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
  venv="$(ensure_venv "llama-server-$minor" "$python" "$MILOCO_REPO/requirements/llama-server.txt")"
  install_llama_into_venv "$venv" "$wheel"
  printf '%s\n' "$venv"
}
