# Shell functions shared by the scripts that build Debian roots for the tests (tests/hass/build.sh,
# tests/trixie/run-suite.sh): step timing, host packages, the Debian mirror this machine's apt uses, and
# the CA bundle pip trusts. Sourced, not run; expects `set -euo pipefail`.

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
