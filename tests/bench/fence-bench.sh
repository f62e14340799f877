#!/usr/bin/env bash
# fence-bench.sh: fence_ipmi against fence_ipmilan (and freeipmi's ipmipower) on ONE ipmi_sim,
# in one run, printing medians, ratios and whether each target is met as a markdown table.
#
# Not part of the test suite. Usage:
#   tests/bench/fence-bench.sh [RUNS]          (default RUNS=30; reboot uses RUNS/2)
# Env: CARGO_TARGET_DIR (where the release build goes), BENCH_OUT (also write the table there),
#      FENCE_IPMI (use this binary instead of building one).
#
# Everything talks to 127.0.0.1 only. Packets are counted with tcpdump on `lo`, filtered on the
# simulator's UDP port, so no other traffic is touched or captured. Passwords reach every
# agent on stdin (the way Pacemaker calls it) and ipmipower via a config file, never via argv.
set -euo pipefail

RUNS=${1:-30}
REBOOT_RUNS=$(( RUNS / 2 > 5 ? RUNS / 2 : 5 ))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

# ---- tools: verify, install the missing ones through apt when we are root ----
declare -A PKG=(
  [ipmi_sim]=openipmi [fence_ipmilan]=fence-agents [ipmitool]=ipmitool [ipmipower]=freeipmi-tools
  [hyperfine]=hyperfine [tcpdump]=tcpdump [jq]=jq [python3]=python3
)
missing=()
for tool in "${!PKG[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
  else
    echo "missing tools; run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
for tool in "${!PKG[@]}"; do
  command -v "$tool" >/dev/null || { echo "$tool still missing (apt-get install ${PKG[$tool]})" >&2; exit 1; }
done

# ---- our binary, release build ----
if [ -z "${FENCE_IPMI:-}" ]; then
  (cd "$ROOT" && cargo build --release -p fence_ipmi >&2)
  FENCE_IPMI="${CARGO_TARGET_DIR:-$ROOT/target}/release/fence_ipmi"
fi
[ -x "$FENCE_IPMI" ] || { echo "no binary at $FENCE_IPMI" >&2; exit 1; }
REF=/usr/sbin/fence_ipmilan
export PYTHONWARNINGS=ignore
unset PCMK_service || true

# ---- one simulator on a free loopback port ----
WORK=$(mktemp -d /tmp/fence-bench.XXXXXX)
SIM_PID=""; DUMP_PID=""
cleanup() {
  [ -n "$DUMP_PID" ] && kill "$DUMP_PID" 2>/dev/null || true
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/chassis.sh" <<'EOF'
#!/bin/sh
dir="$1"; shift
case "$1" in
get) echo "power:$(cat "$dir/power")" ;;
set) echo "$2 $3" >> "$dir/events"; [ "$2" = power ] && echo "$3" > "$dir/power" ;;
esac
exit 0
EOF
echo 1 >"$WORK/power"; : >"$WORK/events"; mkdir "$WORK/state"
cat >"$WORK/lan.conf" <<EOF
name "bench"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 $PORT
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid a123456789abcdefa123456789abcdef
endlan
chassis_control "/bin/sh $WORK/chassis.sh $WORK"
user 2 true "admin" "secret" admin 10 none md2 md5 straight
EOF
printf 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n' >"$WORK/emu"
ipmi_sim -n -c "$WORK/lan.conf" -f "$WORK/emu" -s "$WORK/state" >/dev/null 2>&1 &
SIM_PID=$!
printf 'username admin\npassword secret\n' >"$WORK/freeipmi.conf"
IPMIPOWER="ipmipower -h 127.0.0.1:$PORT -D LAN_2_0 -I 3 --config-file=$WORK/freeipmi.conf -W opensesspriv --stat"
for _ in $(seq 50); do $IPMIPOWER >/dev/null 2>&1 && break; sleep 0.1; done
$IPMIPOWER | grep -q ': on' || { echo "simulator on port $PORT does not answer" >&2; exit 1; }

base="ip=127.0.0.1
ipport=$PORT
username=admin
password=secret
lanplus=1
cipher=3"
printf '%s\naction=status\n' "$base" >"$WORK/status.in"
printf '%s\naction=reboot\npower_wait=0\n' "$base" >"$WORK/reboot.in"

# Sanity: both agents must really work before we time them.
for agent in "$REF" "$FENCE_IPMI"; do
  out=$("$agent" <"$WORK/status.in" 2>&1) || { echo "$agent status failed: $out" >&2; exit 1; }
  [ "$out" = "Status: ON" ] || { echo "$agent status said: $out" >&2; exit 1; }
  : >"$WORK/events"
  out=$("$agent" <"$WORK/reboot.in" 2>&1) || { echo "$agent reboot failed: $out" >&2; exit 1; }
  [ "$(tr '\n' ' ' <"$WORK/events")" = "power 0 power 1 " ] \
    || { echo "$agent reboot did not power off then on: $(cat "$WORK/events")" >&2; exit 1; }
done

# ---- timings (hyperfine; the shell form is corrected for the shell's own start-up) ----
median_ms() { jq -r ".results[$2].median * 1000" "$1"; }
echo "timing metadata, status, reboot ($RUNS / $REBOOT_RUNS runs each)..." >&2
hyperfine -N --style none --warmup 3 --runs "$RUNS" --export-json "$WORK/meta.json" \
  "$REF -o metadata" "$FENCE_IPMI -o metadata" >&2
hyperfine --shell sh --style none --warmup 3 --runs "$RUNS" --export-json "$WORK/status.json" \
  "$REF < $WORK/status.in" "$FENCE_IPMI < $WORK/status.in" "$IPMIPOWER" >&2
hyperfine --shell sh --style none --warmup 1 --runs "$REBOOT_RUNS" --export-json "$WORK/reboot.json" \
  "$REF < $WORK/reboot.in" "$FENCE_IPMI < $WORK/reboot.in" >&2

META_REF=$(median_ms "$WORK/meta.json" 0);    META_OURS=$(median_ms "$WORK/meta.json" 1)
STAT_REF=$(median_ms "$WORK/status.json" 0);  STAT_OURS=$(median_ms "$WORK/status.json" 1)
STAT_IPMIPOWER=$(median_ms "$WORK/status.json" 2)
BOOT_REF=$(median_ms "$WORK/reboot.json" 0);  BOOT_OURS=$(median_ms "$WORK/reboot.json" 1)

# ---- UDP packets per action, counted on lo for the simulator's port only ----
count_packets() { # count_packets COMMAND...   (stdin is passed through)
  local pcap="$WORK/cap.pcap"
  rm -f "$pcap"
  tcpdump --immediate-mode -Z root -i lo -n -U -w "$pcap" "udp port $PORT" 2>"$WORK/tcpdump.err" &
  DUMP_PID=$!
  for _ in $(seq 100); do grep -q listening "$WORK/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
  "$@" >/dev/null 2>&1 || true
  sleep 0.3
  kill -INT "$DUMP_PID"; wait "$DUMP_PID" 2>/dev/null || true; DUMP_PID=""
  local n
  n=$(tcpdump -r "$pcap" -n 2>/dev/null | wc -l)
  [ "$n" -gt 0 ] || { echo "tcpdump captured nothing: $(cat "$WORK/tcpdump.err")" >&2; exit 1; }
  echo "$n"
}
echo "counting packets..." >&2
PK_STAT_REF=$(count_packets "$REF" <"$WORK/status.in")
PK_STAT_OURS=$(count_packets "$FENCE_IPMI" <"$WORK/status.in")
PK_STAT_IPMIPOWER=$(count_packets $IPMIPOWER)
PK_BOOT_REF=$(count_packets "$REF" <"$WORK/reboot.in")
PK_BOOT_OURS=$(count_packets "$FENCE_IPMI" <"$WORK/reboot.in")

# ---- peak RSS (max over 5 runs of each action) ----
peak_kb() { # peak_kb INPUTFILE|- COMMAND...
  local input=$1 max=0 kb; shift
  for _ in 1 2 3 4 5; do
    if [ "$input" = - ]; then
      /usr/bin/time -f %M -o "$WORK/rss" "$@" >/dev/null 2>&1 </dev/null || true
    else
      /usr/bin/time -f %M -o "$WORK/rss" "$@" >/dev/null 2>&1 <"$input" || true
    fi
    kb=$(tail -1 "$WORK/rss"); [ "$kb" -gt "$max" ] && max=$kb
  done
  echo "$max"
}
echo "measuring peak RSS..." >&2
RSS_OURS_META=$(peak_kb - "$FENCE_IPMI" -o metadata)
RSS_OURS_STAT=$(peak_kb "$WORK/status.in" "$FENCE_IPMI")
RSS_OURS_BOOT=$(peak_kb "$WORK/reboot.in" "$FENCE_IPMI")
RSS_REF_STAT=$(peak_kb "$WORK/status.in" "$REF")
RSS_OURS=$(printf '%s\n' "$RSS_OURS_META" "$RSS_OURS_STAT" "$RSS_OURS_BOOT" | sort -n | tail -1)

# ---- the table ----
python3 - "$META_REF" "$META_OURS" "$STAT_REF" "$STAT_OURS" "$STAT_IPMIPOWER" "$BOOT_REF" "$BOOT_OURS" \
  "$PK_STAT_REF" "$PK_STAT_OURS" "$PK_STAT_IPMIPOWER" "$PK_BOOT_REF" "$PK_BOOT_OURS" \
  "$RSS_OURS_META" "$RSS_OURS_STAT" "$RSS_OURS_BOOT" "$RSS_REF_STAT" "$RSS_OURS" "$RUNS" "$REBOOT_RUNS" \
  <<'PY' | tee "${BENCH_OUT:-/dev/null}"
import sys, platform, os
from datetime import datetime, timezone
a = sys.argv[1:]
mr, mo, sr, so, sp, br, bo = map(float, a[0:7])
psr, pso, psp, pbr, pbo = map(int, a[7:12])
rm, rs, rb, rref, rmax = map(int, a[12:17])
runs, reboot_runs = a[17], a[18]
def ok(b): return "yes" if b else "**NO**"
print(f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs "
      f"({platform.machine()}, load average {os.getloadavg()[0]:.1f} at the end), one ipmi_sim "
      f"on 127.0.0.1, lanplus cipher 3; medians of {runs} runs ({reboot_runs} for reboot) by "
      f"hyperfine.\n")
print("| measure | fence_ipmilan | fence_ipmi | ipmipower --stat | ratio | target | met |")
print("|---|---|---|---|---|---|---|")
print(f"| metadata (ms) | {mr:.1f} | {mo:.2f} | – | {mr/mo:.0f}x faster | >= 50x | {ok(mr/mo >= 50)} |")
print(f"| status (ms) | {sr:.1f} | {so:.2f} | {sp:.2f} | {sr/so:.1f}x faster than fence_ipmilan; "
      f"{so/sp:.2f}x ipmipower's time | >= 10x; <= ipmipower | {ok(sr/so >= 10 and so <= sp)} |")
print(f"| reboot, power_wait=0 (ms) | {br:.1f} | {bo:.2f} | – | {br/bo:.1f}x faster | – | – |")
print(f"| status (UDP packets) | {psr} | {pso} | {psp} | {psr/max(pso,1):.1f}x fewer | – | – |")
print(f"| reboot (UDP packets) | {pbr} | {pbo} | – | {pbr/max(pbo,1):.1f}x fewer | >= 3x fewer | {ok(pbr >= 3*pbo)} |")
print(f"| peak RSS (KiB): metadata / status / reboot | – / {rref} / – | "
      f"{rm} / {rs} / {rb} | – | – | <= 5 MB (4882 KiB) | {ok(rmax * 1024 <= 5_000_000)} |")
PY
