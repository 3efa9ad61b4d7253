# Shell functions shared by the scripts that build Debian roots (tests/hass/build.sh,
# tests/trixie/run-suite.sh, firmware_config/arm64-check): step timing, host packages, the Debian mirror
# this machine's apt uses, the CA bundle pip trusts, and running commands in a root ($ROOT) in a private
# mount namespace. Sourced, not run; expects `set -euo pipefail`, and $ROOT, $SHARED and $CACHE set
# before the root functions are called.

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)
STEP_T=""
STEP_NAME=""
TIMES=()
step() {  # step NAME: ends the previous step (printing its time) and starts the next
  step_end
  STEP_NAME="$1"
  STEP_T=$(now)
  echo "==> $STEP_NAME"
}
step_end() {
  if [ -n "$STEP_NAME" ]; then
    local s; s=$(elapsed "$STEP_T")
    echo "    $STEP_NAME: $s s"
    TIMES+=("$(printf '%8s s  %s' "$s" "$STEP_NAME")")
  fi
  STEP_NAME=""
}

host_packages() {  # host_packages CMD:PACKAGE ...: apt-get install the packages whose command is missing
  local missing=() need
  for need in "$@"; do
    command -v "${need%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${need%%:*}" ] || missing+=("${need#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install on the host: ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

debian_mirror() {  # the Debian archive this machine's apt uses (a local mirror or proxy if it has one)
  if [ -n "${EDGE_DEBIAN_MIRROR:-}" ]; then echo "$EDGE_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(
    {
      # deb822 .sources files: the first URI of the stanzas whose suites are not -security
      for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN{RS=""; FS="\n"} {u=""; s=""; for(i=1;i<=NF;i++){ if($i ~ /^URIs:/){sub(/^URIs:[ \t]*/,"",$i); split($i,a," "); u=a[1]} if($i ~ /^Suites:/) s=$i } if(u!="" && s !~ /security/) print u}' "$f"
      done
      # one-line sources
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1=="deb" { for(i=2;i<=NF;i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i+1) !~ /security/) print $i; break } }'
    } | grep -i '/debian/\{0,1\}$' | grep -v -i security | head -n1
  ) || true
  echo "${uri:-http://deb.debian.org/debian}"
}

host_ca_bundle() {  # the CA bundle pip on this host trusts (it may hold a proxy's CA the root lacks)
  local f
  for f in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$f" ] && [ -f "$f" ]; then echo "$f"; return; fi
  done
}

# On every exit: kill the processes still running in the root (a broker or Xvfb that a killed test left;
# they would keep its mount namespace alive), and unmount whatever under the root is mounted in this
# namespace (nothing should be: the mounts are made in the private one).
in_root_pids() {
  local link pid
  for link in /proc/[0-9]*/root; do
    pid=${link#/proc/}; pid=${pid%/root}
    if [ "$(readlink "$link" 2>/dev/null)" = "$ROOT" ]; then echo "$pid"; fi
  done
}
stop_root() {  # stop_root: kill what still runs in $ROOT, unmount what is left mounted under it
  local pids tries=0
  pids=$(in_root_pids)
  if [ -n "$pids" ]; then
    echo "stopping the processes still running in $ROOT: $(echo $pids)" >&2
    # shellcheck disable=SC2086
    $SUDO kill -TERM $pids 2>/dev/null || true
    while pids=$(in_root_pids) && [ -n "$pids" ] && [ $tries -lt 30 ]; do sleep 0.1; tries=$((tries + 1)); done
    # shellcheck disable=SC2086
    [ -z "$pids" ] || $SUDO kill -KILL $pids 2>/dev/null || true
  fi
  local mounts
  mounts=$(mounted_under_root)
  if [ -n "$mounts" ]; then
    echo "unmounting what was left mounted under $ROOT" >&2
    echo "$mounts" | while read -r m; do $SUDO umount -l "$m" 2>/dev/null || true; done
  fi
}
cleanup() {  # the EXIT trap of a script with one root
  local status=$?
  stop_root
  exit "$status"
}

# in_root CMD...: runs CMD in the root, in a private mount namespace, with /proc, /dev (a fresh
# /dev/shm), /sys, a tmpfs /tmp, the host's resolv.conf, the pip cache and ../shared (read-only) mounted,
# and a clean environment (EDGE_* and OPENBLAS_* are passed on).
in_root() {
  local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_DEFAULT_TIMEOUT=180
    PIP_CERT=/etc/ssl/edge-host-ca.crt)
  local v
  for v in PIP_INDEX_URL OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
    if [ -n "${!v:-}" ]; then envs+=("$v=${!v}"); fi
  done
  envs+=("${IN_ROOT_ENV[@]}")
  $SUDO unshare --mount --propagation private -- /bin/sh -c '
    set -e
    root="$1"; shared="$2"; pipcache="$3"; shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
    [ -L "$root/etc/resolv.conf" ] && rm -f "$root/etc/resolv.conf"
    [ -e "$root/etc/resolv.conf" ] || : > "$root/etc/resolv.conf"
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
    mkdir -p "$root/root/.cache/pip" "$root/work/shared"
    mount --bind "$pipcache" "$root/root/.cache/pip"
    if [ -d "$shared" ]; then
      mount --bind "$shared" "$root/work/shared"
      mount -o remount,bind,ro "$root/work/shared"
    fi
    exec chroot "$root" /usr/bin/env -i "$@"
  ' sh "$ROOT" "$SHARED" "$CACHE/pip" "${envs[@]}" "$@"
}
IN_ROOT_ENV=()

mounted_under_root() {  # what is mounted under the root in this mount namespace (deepest first)
  awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}
safe_rm() {  # safe_rm DIR: rm -rf, refusing while anything is mounted under the root (a bind of ../shared)
  if [ -n "$(mounted_under_root)" ]; then
    echo "refusing to delete $1: mounted under $ROOT: $(mounted_under_root | tr '\n' ' ')" >&2
    exit 1
  fi
  $SUDO rm -rf --one-file-system "$1"
}
