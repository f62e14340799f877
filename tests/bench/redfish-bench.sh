#!/usr/bin/env bash
# redfish-bench.sh: our fence_redfish against Debian's fence_redfish on ONE sushy-emulator, in one
# run: metadata, status and reboot times (hyperfine medians) and peak RSS (/usr/bin/time), as a
# markdown table.
#
# Not part of the test suite. Usage:
#   tests/bench/redfish-bench.sh [RUNS]     (default RUNS=30; reboot uses max(RUNS/6, 3))
# Env: CARGO_TARGET_DIR, BENCH_OUT (also write the table there), FENCE_REDFISH (use this binary),
#      KVM_HA_VENV (the sushy-tools venv, default /opt/kvm-ha-venv; .ci/run creates it).
#
# Everything talks to 127.0.0.1 only. Both agents get the password on stdin (as Pacemaker
# passes it) and trust the per-run test CA through the environment. The emulator's fake driver
# applies a power change after a random 1-11 s; here (as in the tests) that delay is pinned to
# its minimum, 1 s, for both agents alike, so reboot times are comparable between runs.
set -euo pipefail

RUNS=${1:-30}
REBOOT_RUNS=$(( RUNS / 6 > 3 ? RUNS / 6 : 3 ))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${KVM_HA_VENV:-/opt/kvm-ha-venv}

for tool in hyperfine openssl python3 /usr/sbin/fence_redfish /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool: apt-get install hyperfine openssl python3 fence-agents python3-requests time" >&2; exit 1; }
done
"$VENV/bin/python3" -c 'import sushy_tools, bcrypt' 2>/dev/null || {
  echo "sushy-tools missing: python3 -m venv $VENV && $VENV/bin/pip install sushy-tools==2.2.0 (or bash .ci/run)" >&2; exit 1; }

if [ -z "${FENCE_REDFISH:-}" ]; then
  (cd "$ROOT" && cargo build --release -p fence_redfish >&2)
  FENCE_REDFISH="${CARGO_TARGET_DIR:-$ROOT/target}/release/fence_redfish"
fi
[ -x "$FENCE_REDFISH" ] || { echo "no binary at $FENCE_REDFISH" >&2; exit 1; }
REF=/usr/sbin/fence_redfish
export PYTHONWARNINGS=ignore
unset PCMK_service || true

WORK=$(mktemp -d /tmp/redfish-bench.XXXXXX)
EMU_PID=""
cleanup() {
  [ -n "$EMU_PID" ] && kill "$EMU_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# ---- per-run CA, server certificate, bcrypt htpasswd, emulator ----
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -out ca.pem -days 1 -subj "/CN=bench CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out srv.key 2>/dev/null
openssl req -new -key srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > srv.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile srv.ext 2>/dev/null
PASSWORD="bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
"$VENV/bin/python3" -c 'import bcrypt,sys; print("admin:" + bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())' "$PASSWORD" > htpasswd
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > emu.conf <<CONF
SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'
SUSHY_EMULATOR_LISTEN_PORT = $PORT
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_STATE_DIR = '$WORK/state'
SUSHY_EMULATOR_SSL_CERT = '$WORK/srv.pem'
SUSHY_EMULATOR_SSL_KEY = '$WORK/srv.key'
SUSHY_EMULATOR_AUTH_FILE = '$WORK/htpasswd'
SUSHY_EMULATOR_FAKE_SYSTEMS = [{'uuid': '27946b59-9e44-4fa7-8e91-f3527a1e0001', 'name': 'node1', 'power_state': 'On', 'external_notifier': False, 'nics': []}]
CONF
cat > launch.py <<'PY'
import sys
from sushy_tools.emulator.resources.systems import fakedriver
class _Minimum:
    @staticmethod
    def randint(low, high):
        return low
fakedriver.random = _Minimum
from sushy_tools.emulator import main
sys.argv[0] = 'sushy-emulator'
sys.exit(main.main())
PY
"$VENV/bin/python3" launch.py --config emu.conf >emu.log 2>&1 &
EMU_PID=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
  sleep 0.1
done
export REQUESTS_CA_BUNDLE=$WORK/ca.pem SSL_CERT_FILE=$WORK/ca.pem

base="ip=127.0.0.1
ipport=$PORT
username=admin
password=$PASSWORD"
printf '%s\naction=status\n' "$base" > status.in
printf '%s\naction=reboot\n' "$base" > reboot.in
# Sanity: both agents answer the same before timing anything.
for a in "$FENCE_REDFISH" "$REF"; do
  out=$("$a" < status.in) || { echo "$a status failed" >&2; exit 1; }
  [ "$out" = "Status: ON" ] || { echo "$a: $out" >&2; exit 1; }
done

median() { # hyperfine JSON -> median in ms
  python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"
}
bench() { # name runs command...
  local name=$1 runs=$2; shift 2
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$name.json" "$@" >/dev/null 2>&1 \
    || hyperfine --warmup 2 --runs "$runs" --export-json "$name.json" "$@" >/dev/null 2>&1
  median "$name.json"
}
rss() { # peak RSS (KiB) of one run: rss INPUT|- command...
  local input=$1; shift
  if [ "$input" = - ]; then /usr/bin/time -f %M "$@" 2>&1 >/dev/null </dev/null | tail -1
  else /usr/bin/time -f %M "$@" 2>&1 >/dev/null <"$input" | tail -1; fi
}

m_ref=$(bench meta-ref "$RUNS" "$REF -o metadata")
m_our=$(bench meta-our "$RUNS" "$FENCE_REDFISH -o metadata")
s_ref=$(bench status-ref "$RUNS" "sh -c '$REF < status.in'")
s_our=$(bench status-our "$RUNS" "sh -c '$FENCE_REDFISH < status.in'")
r_ref=$(bench reboot-ref "$REBOOT_RUNS" "sh -c '$REF < reboot.in'")
r_our=$(bench reboot-our "$REBOOT_RUNS" "sh -c '$FENCE_REDFISH < reboot.in'")
rss_m_ref=$(rss - "$REF" -o metadata); rss_m_our=$(rss - "$FENCE_REDFISH" -o metadata)
rss_s_ref=$(rss status.in "$REF"); rss_s_our=$(rss status.in "$FENCE_REDFISH")
rss_r_ref=$(rss reboot.in "$REF"); rss_r_our=$(rss reboot.in "$FENCE_REDFISH")
ratio() { python3 -c "import sys; print('%.1fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

{
  echo "Run $(date -u '+%Y-%m-%d %H:%M') UTC on $(nproc) CPUs ($(uname -m), load average $(cut -d' ' -f1 /proc/loadavg) at the end), one sushy-emulator $("$VENV/bin/python3" -c 'import importlib.metadata as m; print(m.version("sushy-tools"))') on 127.0.0.1 (TLS, basic auth, power delay pinned to 1 s); medians of $RUNS runs ($REBOOT_RUNS for reboot) by hyperfine."
  echo
  echo "| measure | fence_redfish 4.12.1 | fence_redfish (ours) | ours is |"
  echo "|---|---|---|---|"
  echo "| metadata (ms) | $m_ref | $m_our | $(ratio "$m_ref" "$m_our") faster |"
  echo "| status (ms) | $s_ref | $s_our | $(ratio "$s_ref" "$s_our") faster |"
  echo "| reboot (ms) | $r_ref | $r_our | $(ratio "$r_ref" "$r_our") faster |"
  echo "| peak RSS (KiB): metadata / status / reboot | $rss_m_ref / $rss_s_ref / $rss_r_ref | $rss_m_our / $rss_s_our / $rss_r_our | – |"
} | tee "${BENCH_OUT:-/dev/null}"
