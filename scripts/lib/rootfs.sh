# shellcheck shell=bash
# A Debian-testing root filesystem for the newest Home Assistant: HA >= 2026.3 needs Python >= 3.14.2,
# which Debian 12 cannot install but Debian testing ships. Built once with debootstrap and cached outside
# the repository (it is large). Needs common.sh.

MILOCO_ROOTFS="$MILOCO_CACHE/rootfs/testing"
# What runs inside: Python 3.14 for HA, libgomp1 for the llama.cpp wheel, libturbojpeg0 and ffmpeg for
# HA's camera and ffmpeg helpers, util-linux for flock (the scripts lock their caches inside as well),
# chromium for the browser test (tests/browser drives it with Playwright against HA's web UI),
# llama.cpp-tools for llama.cpp's C++ `llama-server`, the server users run: the newest suite's tests and
# the benchmark serve the tiny model with it. Debian 12 (bookworm) has no llama.cpp-tools package, so a
# Debian 12 host (where the oldest suite runs) keeps only llama-cpp-python's Python server. haproxy is the
# router that tests/test_router.py and the benchmark's scaling section put in front of several servers.
MILOCO_ROOTFS_PACKAGES=(python3.14 python3.14-venv ca-certificates libgomp1 libturbojpeg0 ffmpeg util-linux chromium
  llama.cpp-tools haproxy)

# The mirror apt already uses on the host (it is the one reachable from here).
_debian_mirror() {
  local uri
  uri="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources \
    2>/dev/null | head -n1 || true)"
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# Refuse to delete a root filesystem while anything is mounted under it: `rm -rf` would then walk into
# the host's /dev, /proc or the project. (rootfs_exec mounts only in a private namespace, so this holds
# unless someone mounted by hand.)
_assert_nothing_mounted() {
  if awk -v r="$MILOCO_ROOTFS" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' \
    /proc/mounts; then
    die "something is mounted under $MILOCO_ROOTFS; unmount it (umount -R) before rebuilding"
  fi
}

# ensure_rootfs: build the root filesystem if it is missing or half-built, add packages if the list grew.
ensure_rootfs() {
  local want
  want="${MILOCO_ROOTFS_PACKAGES[*]}"
  if [[ "$(cat "$MILOCO_ROOTFS/.miloco-complete" 2>/dev/null)" != "$want" ]]; then
    with_lock rootfs _build_rootfs
  fi
  _refresh_host_files
}

_build_rootfs() {
  local want
  want="${MILOCO_ROOTFS_PACKAGES[*]}"
  [[ "$(cat "$MILOCO_ROOTFS/.miloco-complete" 2>/dev/null)" == "$want" ]] && return 0
  [[ $EUID -eq 0 ]] || die "building the Debian-testing root filesystem needs root (debootstrap, chroot)"
  if [[ ! -f "$MILOCO_ROOTFS/.miloco-bootstrapped" ]]; then
    # No marker: a previous debootstrap was interrupted (or never ran). Start over.
    _assert_nothing_mounted
    rm -rf "$MILOCO_ROOTFS"
    mkdir -p "$MILOCO_ROOTFS"
    apt_ensure debootstrap
    log "debootstrap Debian testing into $MILOCO_ROOTFS (about a minute)"
    debootstrap --variant=minbase testing "$MILOCO_ROOTFS" "$(_debian_mirror)" >"$MILOCO_ROOTFS.debootstrap.log" 2>&1 ||
      die "debootstrap failed, see $MILOCO_ROOTFS.debootstrap.log"
    touch "$MILOCO_ROOTFS/.miloco-bootstrapped"
  fi
  _refresh_host_files
  log "installing ${MILOCO_ROOTFS_PACKAGES[*]} in the root filesystem"
  # Testing's Release file can be past its Valid-Until date on a mirror snapshot: do not refuse it.
  local apt_log="$MILOCO_ROOTFS.apt.log"
  if ! {
    rootfs_exec apt-get -q -o Acquire::Check-Valid-Until=false update &&
      rootfs_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${MILOCO_ROOTFS_PACKAGES[@]}" &&
      rootfs_exec apt-get clean
  } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "installing packages in the root filesystem failed, see $apt_log"
  fi
  printf '%s' "$want" >"$MILOCO_ROOTFS/.miloco-complete"
}

# Host files the root filesystem needs, copied on every run so that changes on the host carry over: the
# CA bundle (downloads go through a proxy whose CA only the host's bundle holds), DNS and host names.
_refresh_host_files() {
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$MILOCO_ROOTFS/etc/ssl/miloco-host-ca.crt"
  cp -L /etc/resolv.conf "$MILOCO_ROOTFS/etc/resolv.conf"
  cp -L /etc/hosts "$MILOCO_ROOTFS/etc/hosts"
}

# rootfs_exec CMD...: run CMD inside the root filesystem. The mounts are made in a private mount namespace
# (unshare), so the kernel drops them when the command ends, however it ends (failure, Ctrl-C, kill -9):
# nothing is ever left mounted on the host, and `rm -rf` of the root filesystem stays safe.
rootfs_exec() {
  unshare --mount --propagation private -- "$MILOCO_REPO/scripts/lib/rootfs-enter" "$MILOCO_ROOTFS" "$@"
}

# rootfs_become CMD...: rootfs_exec as the caller's last step: the calling process becomes CMD (exec, no shell
# left waiting in between), so that Ctrl-C and kill reach CMD itself and its exit status is the caller's.
rootfs_become() {
  exec unshare --mount --propagation private -- "$MILOCO_REPO/scripts/lib/rootfs-enter" "$MILOCO_ROOTFS" "$@"
}
