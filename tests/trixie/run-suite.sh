#!/usr/bin/env bash
# Runs the whole test suite on Python 3.13 in a Debian 13 "trixie" amd64 root (the base of
# Raspberry Pi OS Trixie), natively: debootstrap, then chroot in a private mount namespace.
#
#   tests/trixie/run-suite.sh                 # `make test` in the root, as .ci/run runs it
#   tests/trixie/run-suite.sh --rebuild       # the same on a freshly built root
#   tests/trixie/run-suite.sh -x -k mqtt      # other arguments go to pytest (.venv/bin/python -m pytest ARGS)
#
# The root is built once and cached in ${EDGE_TRIXIE_CACHE:-$HOME/.cache/edge-trixie}/root; a stamp file
# (stamp.json) records the recipe it was built from, and a root whose stamp matches is reused. Each run
# copies the repository's committed files (git archive HEAD: no .venv, no uncommitted edits) to
# /work/edge in the root, makes ../shared (bind-mounted read-only) visible at /work/shared as in CI,
# and runs `make test` there with EDGE_REQUIRE_MOSQUITTO/XVFB/LFW/SYSTEMD=1, i.e. .ci/run's command.
# The Home Assistant tests skip: they need tests/hass/build.sh's environments, which are not built
# in the root (and EDGE_REQUIRE_HOMEASSISTANT is not set there); .ci/run runs them on the host.
# pip downloads from PyPI inside the root; its cache is kept in the cache folder between runs (it saves
# downloads only where PyPI's answers are cacheable: through a proxy that strips their headers, not).
# Prints the Python and key package versions, the pytest summary and the time of each step, and exits
# with pytest's status. Everything mounted for the root lives in a private mount namespace, so it
# vanishes with the run's processes, even if this script is killed; on exit, any process still running
# in the root (one a killed test left) is killed.
# Runs as root, or with sudo for apt-get, debootstrap, unshare and chroot.
set -euo pipefail

SUITE=trixie
# In the root: Python 3.13 with venv and headers; make for `make test`; python3-tk for the `edge enroll`
# preview window (tkinter: Debian ships it apart from the standard library); mosquitto (broker and
# mosquitto_passwd) and openssl for the MQTT and TLS tests; xvfb and xdotool for the window tests;
# systemd for systemd-analyze verify; CA certificates for pip; tzdata. The wheels (numpy, OpenCV
# headless, LiteRT, numba/llvmlite) bundle their own libraries and need nothing more from apt.
ROOT_PACKAGES=(python3 python3-venv python3-dev python3-tk make ca-certificates mosquitto openssl xvfb xdotool systemd tzdata)
KEY_PACKAGES=(numpy opencv-python-headless ai-edge-litert numba llvmlite paho-mqtt pydantic)
RECIPE=1  # bump to force a rebuild when the root's build steps change

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(git -C "$HERE" rev-parse --show-toplevel)"
SHARED="$(cd "$REPO/.." && pwd)/shared"
CACHE="${EDGE_TRIXIE_CACHE:-$HOME/.cache/edge-trixie}"
ROOT="$CACHE/root"

REBUILD=0
PYTEST_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --rebuild) REBUILD=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) PYTEST_ARGS+=("$arg") ;;
  esac
done

source "$HERE/../debian-host.sh"  # now, elapsed, step, step_end, host_packages, debian_mirror, host_ca_bundle
T_START=$(now)

build_root() {
  local key="suite=$SUITE packages=${ROOT_PACKAGES[*]} recipe=$RECIPE"
  if [ "$REBUILD" = 0 ] && [ -f "$CACHE/stamp.json" ] && grep -qF "\"recipe\": \"$key\"" "$CACHE/stamp.json"; then
    echo "root: up to date ($ROOT, built $(sed -n 's/.*"built": "\([^"]*\)".*/\1/p' "$CACHE/stamp.json"))"
    return
  fi
  local t0; t0=$(now)
  $SUDO rm -f "$CACHE/stamp.json"
  host_packages debootstrap:debootstrap unshare:util-linux chroot:coreutils
  local mirror; mirror=$(debian_mirror)
  step "debootstrap Debian $SUITE amd64 (minbase) from $mirror into $ROOT"
  safe_rm "$ROOT"
  $SUDO debootstrap --arch=amd64 --variant=minbase --include=ca-certificates \
    "$SUITE" "$ROOT" "$mirror" > "$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 30 "$CACHE/debootstrap.log"; echo "debootstrap failed; full log: $CACHE/debootstrap.log" >&2; exit 1; }
  # This host's apt may use a frozen mirror or snapshot whose Release files are past Valid-Until; allow it.
  printf 'Acquire::Check-Valid-Until "false";\n' | $SUDO tee "$ROOT/etc/apt/apt.conf.d/99edge-trixie" >/dev/null
  step "apt-get install in the root: ${ROOT_PACKAGES[*]}"
  $SUDO cp "$(host_ca_bundle)" "$ROOT/etc/ssl/edge-host-ca.crt"
  in_root apt-get update -qq > "$CACHE/apt.log" 2>&1 &&
    in_root apt-get install -y -q --no-install-recommends "${ROOT_PACKAGES[@]}" >> "$CACHE/apt.log" 2>&1 ||
    { tail -n 30 "$CACHE/apt.log"; echo "apt-get in the root failed; log: $CACHE/apt.log" >&2; exit 1; }
  in_root apt-get clean  # the downloaded .debs
  step_end
  local python; python=$(in_root python3 -c 'import platform; print(platform.python_version())')
  local seconds; seconds=$(elapsed "$t0")
  printf '{\n  "recipe": "%s",\n  "debian_suite": "%s",\n  "mirror": "%s",\n  "python": "%s",\n  "built": "%s",\n  "build_seconds": %s\n}\n' \
    "$key" "$SUITE" "$mirror" "$python" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$seconds" | $SUDO tee "$CACHE/stamp.json.tmp" >/dev/null
  $SUDO mv "$CACHE/stamp.json.tmp" "$CACHE/stamp.json"
  echo "root: Debian $SUITE with Python $python built in $seconds s"
}

$SUDO mkdir -p "$CACHE" "$CACHE/pip" "$CACHE/logs"
exec 9> "$CACHE/.lock"
flock 9  # one run at a time per cache (the root's /work/edge is shared)
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_root
$SUDO cp "$(host_ca_bundle)" "$ROOT/etc/ssl/edge-host-ca.crt"  # the host's CAs may have changed since

REVISION=$(git -C "$REPO" rev-parse --short HEAD)
SUBJECT=$(git -C "$REPO" log -1 --format=%s | cut -c1-100)
step "copy the committed files of $REVISION (git archive HEAD) to /work/edge in the root"
safe_rm "$ROOT/work/edge"
$SUDO mkdir -p "$ROOT/work/edge" "$ROOT/work/shared"
git -C "$REPO" archive HEAD | $SUDO tar -x -C "$ROOT/work/edge"
if [ ! -f "$SHARED/data/lfw/pairs.csv" ]; then
  echo "    warning: $SHARED/data/lfw/pairs.csv is missing: the LFW tests will fail (EDGE_REQUIRE_LFW=1)" >&2
fi

LOG="$CACHE/logs/run-$(date -u +%Y%m%dT%H%M%SZ).log"
# keep the 20 newest logs
find "$CACHE/logs" -name 'run-*.log' -printf '%f\n' | sort -r | tail -n +20 | while read -r old; do $SUDO rm -f "$CACHE/logs/$old"; done
step "make .venv/.installed in the root (python3 -m venv, pip install -e '.[test]' from PyPI)"
logged() {  # logged CMD...: in_root CMD... with its output shown and added to $LOG; its status
  # In the background, waited for: a signal to this script is then handled at once (the trap stops what
  # runs in the root), not after the command ends.
  ( set -o pipefail; in_root "$@" 2>&1 | tee -a "$LOG" ) &
  local status=0
  wait $! || status=$?
  return $status
}
logged /bin/sh -c 'cd /work/edge && exec make .venv/.installed' || { echo "installing in the root failed; log: $LOG" >&2; exit 1; }
step_end

VERSIONS=$(in_root /work/edge/.venv/bin/python - "${KEY_PACKAGES[@]}" <<'PY'
import platform, sys
from importlib import metadata
print(f"Python {platform.python_version()} ({sys.executable}, {platform.platform()})")
for name in sys.argv[1:]:
    try:
        print(f"  {name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"  {name} not installed")
PY
)
DEBIAN_VERSION=$(cat "$ROOT/etc/debian_version")
echo "Debian $DEBIAN_VERSION ($SUITE) root, $VERSIONS"

IN_ROOT_ENV=(EDGE_REQUIRE_MOSQUITTO=1 EDGE_REQUIRE_XVFB=1 EDGE_REQUIRE_LFW=1 EDGE_REQUIRE_SYSTEMD=1)
if [ ${#PYTEST_ARGS[@]} -eq 0 ]; then
  step "make test in the root (EDGE_REQUIRE_MOSQUITTO/XVFB/LFW/SYSTEMD=1, no Home Assistant)"
  STATUS=0
  logged /bin/sh -c 'cd /work/edge && exec make test' || STATUS=$?
  # make exits 2 when its recipe fails; pytest's own status is in make's "Error N" line.
  ERR=$(tail -n 5 "$LOG" | sed -n 's/^make: \*\*\* \[.*test\] Error \([0-9]*\)$/\1/p' | tail -n1)
  if [ "$STATUS" != 0 ] && [ -n "$ERR" ]; then STATUS=$ERR; fi
else
  step "pytest$(printf ' %q' "${PYTEST_ARGS[@]}") in the root (EDGE_REQUIRE_MOSQUITTO/XVFB/LFW/SYSTEMD=1, no Home Assistant)"
  STATUS=0
  logged /bin/sh -c 'cd /work/edge && exec .venv/bin/python -m pytest "$@"' sh "${PYTEST_ARGS[@]}" || STATUS=$?
fi
step_end
IN_ROOT_ENV=()

# pytest's closing line, with or without its ===== frame (-q drops it)
SUMMARY=$(grep -E '^(=+ )?([0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)(, )?)+ in [0-9.]+s|^(=+ )?no tests ran in ' "$LOG" | tail -n1 || true)
echo
echo "==== trixie run summary ===="
echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "revision: $REVISION $SUBJECT"
echo "root:     Debian $DEBIAN_VERSION ($SUITE) amd64, native, chroot; $(nproc) cores"
echo "$VERSIONS"
echo "pytest:   ${SUMMARY:-no summary line (see $LOG)}"
echo "status:   $STATUS"
echo "steps:"
printf '%s\n' "${TIMES[@]}"
echo "$(printf '%8s s  %s' "$(elapsed "$T_START")" "in all")"
echo "log:      $LOG"
# last, pytest's own closing line (what a reader of the output, or CI, looks for at the end)
[ -z "$SUMMARY" ] || echo "$SUMMARY"
exit "$STATUS"
