# shellcheck shell=bash
# Which test suites to run, and where each one runs. Needs common.sh, llama.sh and rootfs.sh.

# selected_suites: print the suites named by MILOCO_SUITES (default: oldest,newest), one a line.
selected_suites() {
  local name
  local -a names
  IFS=', ' read -r -a names <<<"${MILOCO_SUITES:-oldest,newest}"
  for name in "${names[@]}"; do
    case "$name" in
      oldest | newest) printf '%s\n' "$name" ;;
      '') ;;
      *) die "MILOCO_SUITES: unknown suite '$name' (oldest, newest)" ;;
    esac
  done
}

# suite_exec CMD NAME [ARGS...]: run scripts/lib/suite CMD NAME ARGS where suite NAME can run: on the
# host, except the newest suite on a host without Python >= 3.14.2, which runs in the Debian-testing
# root filesystem.
suite_exec() {
  local cmd="$1" name="$2"
  shift 2
  if [[ "$name" == newest ]] && ! find_python 3.14.2 >/dev/null; then
    ensure_rootfs
    rootfs_exec "$MILOCO_REPO/scripts/lib/suite" "$cmd" "$name" "$@"
  else
    "$MILOCO_REPO/scripts/lib/suite" "$cmd" "$name" "$@"
  fi
}

# prepare_suites NAME...: make every named suite ready to run (venvs, wheel, root filesystem).
prepare_suites() {
  local name python
  # HA's camera loads libturbojpeg and its ffmpeg helpers run the ffmpeg binary, in the tests too; the
  # browser test (tests/browser) drives Debian's chromium. (The root filesystem installs its own copies.)
  apt_ensure libturbojpeg0 ffmpeg chromium haproxy
  # The wheel is built on the host, once, before any suite (the root filesystem has no compiler).
  python="$(find_python 3.13)" || die "no Python >= 3.13 found (tried python3.14, python3.13, python3, pyenv)"
  ensure_llama_wheel "$python" >/dev/null
  for name in "$@"; do
    log "preparing the $name suite"
    suite_exec prepare "$name" >/dev/null
  done
}
