#!/usr/bin/env bash
# Builds and caches the Home Assistant Core environments that tests/hass/harness.py runs.
#
#   tests/hass/build.sh [current|oldest|all]      (default: all)
#
# current: homeassistant $CURRENT_HA in a venv at /opt/ha inside a Debian
#          $CURRENT_SUITE root (this host's architecture: amd64 here) made with debootstrap (HA needs Python >= 3.14.2;
#          Debian 12 has 3.11 and Debian 13 "trixie" 3.13, so the root is Debian 14
#          "forky", whose python3 is 3.14). Entered with chroot, in a private mount
#          namespace (unshare -m) so that /proc, /dev and /sys mounted for it
#          vanish with the last process, even if this script is killed.
# oldest:  homeassistant $OLDEST_HA in a venv on this host's Python 3.11.
#
# Cache: ${EDGE_HA_CACHE:-$HOME/.cache/edge-ha}/{current,oldest}. An environment
# whose stamp file (JSON, with the versions) matches this recipe is left alone, so
# a second run takes well under a second. Every download happens here: Home Assistant
# then runs with --skip-pip, because the requirements of every integration it may
# set up (tests/hass/integrations.py) are installed now.
# Runs as root, or with sudo for apt-get, debootstrap, unshare and chroot.
set -euo pipefail

CURRENT_HA=2026.11.0
CURRENT_SUITE=forky
OLDEST_HA=2024.3.3
# acme (via hass-nabucasa) imports josepy.ComparableX509, gone in josepy 2.
OLDEST_PINS=("josepy<2")
# Debian packages in the root: Python, CA certificates, libturbojpeg for camera/image (PyTurboJPEG), tzdata,
# and a C++ compiler with Python's headers for the two requirements that have no cp314 wheel on PyPI
# (pymicro-vad, pyspeex-noise: assist_pipeline, a dependency of the assist_satellite base platform).
ROOT_PACKAGES=(python3 python3-venv python3-dev g++ ca-certificates libturbojpeg0 tzdata)
RECIPE=1  # bump to force a rebuild when the steps below change

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${EDGE_HA_CACHE:-$HOME/.cache/edge-ha}"

source "$HERE/../debian-host.sh"  # now, elapsed, step, step_end, host_packages, debian_mirror, host_ca_bundle
T_START=$(now)

# pip on this machine may be configured with indexes that do not exist; its warnings about them are noise.
quiet_pip_filter() { grep -v -E "^WARNING: Location 'file:|is ignored: it is either a non-existing path" || true; }

stamp_matches() {  # stamp_matches FILE KEY
  [ -f "$1" ] && grep -q "\"recipe\": \"$2\"" "$1"
}

up_to_date() {  # up_to_date FLAVOUR DIR KEY: true (and says so) if DIR's stamp matches KEY; else clears it for a build
  if stamp_matches "$2/stamp.json" "$3"; then
    echo "$1: up to date ($(grep -o '"homeassistant": "[^"]*"' "$2/stamp.json"), $2)"
    return 0
  fi
  rm -f "$2/stamp.json"
  mkdir -p "$2"
  return 1
}

write_stamp() {  # write_stamp FILE KEY SECONDS HA PYTHON [SUITE]
  python3 - "$@" <<'PY'
import json, sys, datetime
path, key, seconds, ha, python = sys.argv[1:6]
suite = sys.argv[6] if len(sys.argv) > 6 else None
data = {"recipe": key, "homeassistant": ha, "python": python, "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "build_seconds": round(float(seconds), 1)}
if suite:
    data["debian_suite"] = suite
open(path + ".tmp", "w").write(json.dumps(data, indent=2) + "\n")
PY
  mv "$1.tmp" "$1"
}

# Run a command inside ROOT: a private mount namespace with /proc, /dev and /sys mounted, then chroot,
# with a clean environment. The mounts disappear when the command's last process exits.
in_root() {  # in_root ROOT CMD...
  local root="$1"; shift
  $SUDO unshare --mount --propagation private -- /bin/sh -c '
    root="$1"; shift
    mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" && mount --bind /sys "$root/sys" || exit 1
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 \
      PIP_CERT=/etc/ssl/edge-ha-host-ca.crt PIP_DEFAULT_TIMEOUT=180 ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} "$@"
  ' sh "$root" "$@"
}

build_current() {
  local dir="$CACHE/current" root="$CACHE/current/root"
  local key="ha=$CURRENT_HA suite=$CURRENT_SUITE packages=${ROOT_PACKAGES[*]} recipe=$RECIPE integrations=$(sha256sum "$HERE/integrations.py" | cut -c1-12)"
  up_to_date current "$dir" "$key" && return
  local t0; t0=$(now)
  host_packages debootstrap:debootstrap unshare:util-linux
  if [ ! -f "$root/.edge-debootstrap-done" ] || ! grep -qx "$CURRENT_SUITE" "$root/.edge-debootstrap-done"; then
    local mirror; mirror=$(debian_mirror)
    step "debootstrap Debian $CURRENT_SUITE $(dpkg --print-architecture) from $mirror into $root"
    $SUDO rm -rf "$root"
    # The script of an unknown newer suite is sid's (this host's debootstrap may predate the suite's name).
    local script=/usr/share/debootstrap/scripts/$CURRENT_SUITE
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    $SUDO debootstrap --arch="$(dpkg --print-architecture)" --variant=minbase \
      --include=python3,python3-venv,ca-certificates \
      "$CURRENT_SUITE" "$root" "$mirror" "$script" > "$dir/debootstrap.log" 2>&1 ||
      { tail -n 30 "$dir/debootstrap.log"; echo "debootstrap failed; full log: $dir/debootstrap.log" >&2; exit 1; }
    echo "$CURRENT_SUITE" | $SUDO tee "$root/.edge-debootstrap-done" >/dev/null
  fi
  # This host's apt may use a frozen mirror or snapshot whose Release files are past Valid-Until (this one's
  # apt.conf.d turns the check off for that reason); do the same in the root.
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' | $SUDO tee "$root/etc/apt/apt.conf.d/99edge-ha" >/dev/null
  local installed
  installed=$(in_root "$root" dpkg-query -W -f='${Status}\n' "${ROOT_PACKAGES[@]}" 2>/dev/null | grep -c "install ok installed" || true)
  if [ "$installed" != "${#ROOT_PACKAGES[@]}" ]; then
    step "apt-get install in the root: ${ROOT_PACKAGES[*]}"
    in_root "$root" apt-get update -qq
    in_root "$root" apt-get install -y -qq --no-install-recommends "${ROOT_PACKAGES[@]}" > "$dir/apt.log" 2>&1 ||
      { tail -n 30 "$dir/apt.log"; echo "apt-get in the root failed; log: $dir/apt.log" >&2; exit 1; }
    in_root "$root" apt-get clean  # the downloaded .debs (a few hundred MB)
  fi
  step "venv with homeassistant==$CURRENT_HA in the root"
  $SUDO cp "$(host_ca_bundle)" "$root/etc/ssl/edge-ha-host-ca.crt"
  in_root "$root" /bin/sh -c "[ -x /opt/ha/bin/python ] || python3 -m venv /opt/ha"
  in_root "$root" /opt/ha/bin/pip install -q "homeassistant==$CURRENT_HA"
  step "requirements of the integrations the harness loads (tests/hass/integrations.py)"
  $SUDO cp "$HERE/integrations.py" "$root/tmp/edge-ha-integrations.py"
  in_root "$root" /opt/ha/bin/python /tmp/edge-ha-integrations.py > "$dir/requirements.txt"
  $SUDO cp "$dir/requirements.txt" "$root/tmp/edge-ha-requirements.txt"
  echo "    $(tr '\n' ' ' < "$dir/requirements.txt")"
  in_root "$root" /bin/sh -c 'exec /opt/ha/bin/pip install -q -r /tmp/edge-ha-requirements.txt \
    -c "$(/opt/ha/bin/python -c "import homeassistant, os; print(os.path.dirname(homeassistant.__file__))")/package_constraints.txt"'
  in_root "$root" /opt/ha/bin/pip check >/dev/null || in_root "$root" /opt/ha/bin/pip check || true
  $SUDO rm -f "$root/tmp/edge-ha-integrations.py" "$root/tmp/edge-ha-requirements.txt"
  step_end
  local py; py=$(in_root "$root" /opt/ha/bin/python -c 'import platform; print(platform.python_version())')
  local ha; ha=$(in_root "$root" /opt/ha/bin/python -c 'from homeassistant.const import __version__; print(__version__)')
  write_stamp "$dir/stamp.json" "$key" "$(elapsed "$t0")" "$ha" "$py" "$CURRENT_SUITE"
  echo "current: Home Assistant $ha on Python $py (Debian $CURRENT_SUITE root) built in $(elapsed "$t0") s"
}

oldest_python() {
  local p
  for p in "${EDGE_HA_OLDEST_PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
      command -v "$p"; return
    fi
  done
  echo "oldest: Home Assistant $OLDEST_HA needs Python 3.11 or 3.12 (set EDGE_HA_OLDEST_PYTHON)" >&2
  exit 1
}

build_oldest() {
  local dir="$CACHE/oldest" venv="$CACHE/oldest/venv"
  local python; python=$(oldest_python)
  local key="ha=$OLDEST_HA python=$("$python" -c 'import platform; print(platform.python_version())') pins=${OLDEST_PINS[*]} recipe=$RECIPE integrations=$(sha256sum "$HERE/integrations.py" | cut -c1-12)"
  up_to_date oldest "$dir" "$key" && return
  local t0; t0=$(now)
  step "venv with homeassistant==$OLDEST_HA on $python"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install -q "homeassistant==$OLDEST_HA" "${OLDEST_PINS[@]}" 2>&1 | quiet_pip_filter
  step "requirements of the integrations the harness loads (tests/hass/integrations.py)"
  "$venv/bin/python" "$HERE/integrations.py" > "$dir/requirements.txt"
  echo "    $(tr '\n' ' ' < "$dir/requirements.txt")"
  local constraints; constraints="$("$venv/bin/python" -c 'import homeassistant, os; print(os.path.dirname(homeassistant.__file__))')/package_constraints.txt"
  "$venv/bin/pip" install -q -r "$dir/requirements.txt" "${OLDEST_PINS[@]}" -c "$constraints" 2>&1 | quiet_pip_filter
  "$venv/bin/pip" check >/dev/null 2>&1 || "$venv/bin/pip" check 2>&1 | quiet_pip_filter
  step_end
  local py; py=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
  local ha; ha=$("$venv/bin/python" -c 'from homeassistant.const import __version__; print(__version__)')
  write_stamp "$dir/stamp.json" "$key" "$(elapsed "$t0")" "$ha" "$py"
  echo "oldest: Home Assistant $ha on Python $py built in $(elapsed "$t0") s"
}

what="${1:-all}"
case "$what" in
  current | oldest | all) ;;
  *) echo "usage: $0 [current|oldest|all]" >&2; exit 2 ;;
esac
mkdir -p "$CACHE"
exec 9> "$CACHE/.lock"
flock 9  # one build at a time per cache
if [ "$what" = current ] || [ "$what" = all ]; then build_current; fi
if [ "$what" = oldest ] || [ "$what" = all ]; then build_oldest; fi
echo "build.sh $what: $(elapsed "$T_START") s in all"
