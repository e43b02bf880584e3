#!/usr/bin/env bash
# End-to-end throughput: N readings (QoS 1 by default) queued in Mosquitto for two
# persistent sessions, then drained by a plain subscriber (mosquitto_sub: the broker's own
# delivery rate) and by Tidewatch (decode, validate, evaluate a threshold rule per reading).
# Usage: N=200000 QOS=1 scripts/load.sh   (needs mosquitto and mosquitto-clients)
# STATE=1 turns crash safety on (checkpoints every CHECKPOINT, default 5s; SYNC=full fsyncs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
N=${N:-200000}
QOS=${QOS:-1}
cargo build --release --quiet
BIN=target/release/tidewatch
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port)
cleanup() { kill "${broker:-}" "${tw:-}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# Queues without limits; up to 1000 QoS 1 messages in flight per client (default 20).
cat > "$dir/mosquitto.conf" <<CONF
user root
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages ${INFLIGHT:-1000}
queue_qos0_messages true
CONF
mosquitto -c "$dir/mosquitto.conf" >/dev/null 2>&1 & broker=$!
sleep 0.5

cat > "$dir/rules.toml" <<'RULES'
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
for = "5m"
levels = [{ severity = "yellow", above = "station.warning_level" }, { severity = "red", above = 20 }]
RULES
cat > "$dir/tidewatch.toml" <<CONF
stations = "stations.toml"
rules = ["rules.toml"]
[engine]
workers = ${WORKERS:-1}
idle_source_timeout = "1h"
[mqtt]
broker = "127.0.0.1:$port"
client_id = "tidewatch-load"
[[mqtt.route]]
name = "json"
filter = "tidewatch/json/#"
format = "json"
[http]
listen = "127.0.0.1:$http"
[output]
console = false
alerts_file = "alerts.jsonl"
dead_letter_file = "dead_letters.jsonl"
CONF
if [ -n "${STATE:-}" ]; then   # crash safety on: checkpoints and the reading log
  printf '[state]\ndir = "state"\ncheckpoint_interval = "%s"\nsync = "%s"\n' "${CHECKPOINT:-5s}" "${SYNC:-normal}" >> "$dir/tidewatch.toml"
fi

# Persistent sessions for both consumers, so the broker queues the backlog for them.
mosquitto_sub -h 127.0.0.1 -p "$port" -c -i baseline -q 1 -t 'tidewatch/json/#' -W 1 >/dev/null 2>&1 || true
# (one reading on a topic nobody subscribes to, to write the registry of stations L0..L999)
$BIN load --broker "127.0.0.1:$port" --count 1 --stations 1000 --qos 0 --write-stations "$dir/stations.toml" --topic-prefix warmup >/dev/null
$BIN run --config "$dir/tidewatch.toml" --duration 2s >/dev/null 2>&1

echo "publishing $N readings at QoS $QOS"
$BIN load --broker "127.0.0.1:$port" --count "$N" --stations 1000 --qos "$QOS"

start=$(date +%s.%N)
mosquitto_sub -h 127.0.0.1 -p "$port" -c -i baseline -q 1 -t 'tidewatch/json/#' -C "$N" >/dev/null
end=$(date +%s.%N)
base=$(python3 -c "print(f'{$N/($end-$start):.0f}')")
echo "mosquitto_sub drained $N in $(python3 -c "print(f'{$end-$start:.2f}')") s: $base readings/s"

# Tidewatch: start it and poll its health every 5 ms from one process, timing from process
# start (as for mosquitto_sub) to the last reading handed to the engine.
read -r ours first_rate peak_mib < <(python3 - "$BIN" "$dir/tidewatch.toml" "$http" "$N" "$dir/tw.log" <<'PYTHON'
import json, subprocess, sys, time, urllib.request
bin_, config, http, n, log = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
start = time.monotonic()
proc = subprocess.Popen([bin_, "run", "--config", config], stdout=open(log, "w"), stderr=subprocess.STDOUT)
first = None
while True:
    try:
        readings = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz"))["readings"]
    except Exception:
        readings = 0
    now = time.monotonic()
    if readings and first is None:
        first = (now, readings)
    if readings >= n:
        break
    time.sleep(0.005)
peak = next((l.split()[1] for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmHWM")), "?")
proc.terminate(); proc.wait()
print(f"{n / (now - start):.0f} {(n - first[1]) / (now - first[0]):.0f} {int(peak) // 1024 if peak != '?' else '?'}")
PYTHON
)
echo "tidewatch drained $N: $ours readings/s from process start ($first_rate/s from its first readings), peak RSS $peak_mib MiB"
echo "tidewatch / mosquitto_sub: $(python3 -c "print(f'{100*$ours/$base:.0f}')") %"
