#!/usr/bin/env bash
# daemon-bench.sh: `hactl-kvm run` managing N hosts served by the CloudStack API double, heartbeats
# on tmpfs, power reads answered by ipmi_sim instances (host h -> simulator h % SIMS, through
# [[host]] bmc_port overrides), shipped core defaults. Measures the daemon's CPU (% of one core)
# and peak RSS at steady state, then the time from a host's crash (heartbeat stops, agent
# Disconnected) to its confirmed OFF (the BMC's event log).
#
# Not part of the test suite. Usage:
#   tests/bench/daemon-bench.sh [HOSTS] [SIMS] [STEADY_SECS]     (defaults 2000 20 60)
# Targets (issue 7): < 5 % of one core and < 100 MB at steady state; crash -> OFF < 60 s.
# Everything talks to 127.0.0.1 only.
set -euo pipefail

HOSTS=${1:-2000}
SIMS=${2:-20}
STEADY=${3:-60}
CLUSTERS=$(( HOSTS / 100 > 0 ? HOSTS / 100 : 1 ))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v ipmi_sim >/dev/null || { echo "apt-get install openipmi" >&2; exit 1; }
command -v python3 >/dev/null || { echo "apt-get install python3" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -p hactl-kvm -p test-support --bin hactl-kvm --bin cloudstack-double >&2)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

WORK=$(mktemp -d /tmp/daemon-bench.XXXXXX)
HB=$(mktemp -d /dev/shm/daemon-bench-hb.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK" "$HB"
}
trap cleanup EXIT

# ---- ipmi_sim instances on free loopback ports ----
cat >"$WORK/chassis.sh" <<'EOF'
#!/bin/sh
dir="$1"; shift
case "$1" in
get) echo "power:$(cat "$dir/power")" ;;
set) echo "$(date +%s.%N) $2 $3" >> "$dir/events"; [ "$2" = power ] && echo "$3" > "$dir/power" ;;
esac
exit 0
EOF
declare -a SIM_PORT
for s in $(seq 0 $((SIMS - 1))); do
  d="$WORK/sim$s"; mkdir -p "$d/state"; echo 1 >"$d/power"; : >"$d/events"
  port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  SIM_PORT[$s]=$port
  cat >"$d/lan.conf" <<EOF
name "bench$s"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 $port
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid a123456789abcdefa123456789abcdef
endlan
chassis_control "/bin/sh $WORK/chassis.sh $d"
user 2 true "admin" "secret" admin 10 none md2 md5 straight
EOF
  printf 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n' >"$d/emu"
  ipmi_sim -n -c "$d/lan.conf" -f "$d/emu" -s "$d/state" >/dev/null 2>&1 &
  PIDS+=($!)
done

# ---- the API double, commands on a FIFO ----
mkfifo "$WORK/cs.in"
"$BIN/cloudstack-double" --hosts "$HOSTS" --clusters "$CLUSTERS" <"$WORK/cs.in" >"$WORK/cs.out" &
PIDS+=($!)
exec 3>"$WORK/cs.in"
for _ in $(seq 100); do grep -q secretkey "$WORK/cs.out" && break; sleep 0.1; done
ENDPOINT=$(sed -n 's/^endpoint=//p' "$WORK/cs.out")
APIKEY=$(sed -n 's/^apikey=//p' "$WORK/cs.out")
SECRET=$(sed -n 's/^secretkey=//p' "$WORK/cs.out")

# ---- heartbeats on tmpfs (kvm-host's record format, interval 3 s) ----
cat >"$WORK/hb.py" <<'EOF'
import json, os, sys, time
hb, n, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(os.path.join(hb, "KVMHA"), exist_ok=True)
c = 0
while True:
    c += 1
    dead = set(open(stop).read().split()) if os.path.exists(stop) else set()
    for h in range(n):
        name = "kvm%04d" % h
        if name in dead:
            continue
        p = os.path.join(hb, "KVMHA", "ocf-hb-" + name)
        with open(p + ".tmp", "w") as f:
            f.write(json.dumps({"format": 1, "host": name, "counter": c, "incarnation": "bench-" + name,
                                "written_unix_ms": int(time.time() * 1000), "interval_secs": 3}) + "\n")
        os.rename(p + ".tmp", p)
    time.sleep(3)
EOF
python3 "$WORK/hb.py" "$HB" "$HOSTS" "$WORK/dead" &
PIDS+=($!)

# ---- configuration: shipped defaults, local activity checks ----
umask 077
printf '[cloudstack]\nsecret_key = "%s"\n[bmc]\npassword = "secret"\n' "$SECRET" >"$WORK/secrets.toml"
{
  printf '[daemon]\njournal_dir = "%s"\nsecrets_file = "%s"\ncontrol_socket = "%s"\n' "$WORK/journal" "$WORK/secrets.toml" "$WORK/control.sock"
  printf '[events]\nsyslog_socket = ""\nfile = "%s"\n' "$WORK/events.jsonl"
  printf '[cloudstack]\nurl = "%s"\napi_key = "%s"\n' "$ENDPOINT" "$APIKEY"
  printf '[activity]\nmode = "local"\nrequire_mount = false\n[activity.mounts]\nprimary = "%s"\n' "$HB"
  printf '[power]\nusername = "admin"\n'
  for h in $(seq 0 $((HOSTS - 1))); do
    printf '[[host]]\nhost = "kvm%04d"\nbmc_port = %d\n' "$h" "${SIM_PORT[$((h % SIMS))]}"
  done
} >"$WORK/hactl.toml"

"$BIN/hactl-kvm" run --config "$WORK/hactl.toml" 2>"$WORK/daemon.log" &
DPID=$!
PIDS+=($DPID)
ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }
HZ=$(getconf CLK_TCK)

echo "warming up (inventory, first power reads, 60 s start-up grace)..." >&2
sleep 70
t0=$(ticks); s0=$(date +%s.%N)
sleep "$STEADY"
t1=$(ticks); s1=$(date +%s.%N)
CPU=$(python3 -c "print(f'{100*($t1-$t0)/$HZ/($s1-$s0):.2f}')")
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
AVAIL=$(grep -c '"to":"AVAILABLE"' "$WORK/daemon.log" || true)

# ---- crash kvm0000: heartbeat stops, agent Disconnected; time to the BMC's off ----
echo kvm0000 >"$WORK/dead"
crash=$(date +%s.%N)
echo "state kvm0000 Disconnected" >&3
off=""
for _ in $(seq 1200); do
  off=$(awk '$2 == "power" && $3 == "0" {print $1; exit}' "$WORK/sim0/events")
  [ -n "$off" ] && break
  sleep 0.1
done
CRASH=$( [ -n "$off" ] && python3 -c "print(f'{$off-$crash:.1f}')" || echo "none within 120 s")

echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg): $HOSTS hosts in $CLUSTERS clusters, $SIMS ipmi_sim, shipped core defaults, local checks on tmpfs."
echo
echo "| measure | value | target |"
echo "|---|---|---|"
echo "| daemon CPU at steady state (% of one core, ${STEADY} s) | $CPU | < 5 |"
echo "| daemon peak RSS (MiB) | $(( RSS / 1024 )) | < 100 |"
echo "| hosts that reached AVAILABLE | $AVAIL | $HOSTS |"
echo "| crash -> power-off at the BMC (s; confirmed by the read that follows) | $CRASH | < 60 |"
