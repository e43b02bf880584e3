#!/usr/bin/env bash
# Recovery after kill -9. Tidewatch with crash safety on ([state], checkpoints every
# CHECKPOINT) takes a steady stream over a real Mosquitto — RATE readings/s at QoS 1 for 1000
# stations, one reading in EVERY crossing its station's warning level — and is killed with
# SIGKILL half way and started again at once. Reports what the restart did (rule states
# restored, readings replayed from the log and how long that took) and the time from the new
# process's start to its first alert.
#
# Usage: RATE=20000 DURATION=20 scripts/recovery.sh   (needs mosquitto and mosquitto-clients)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
RATE=${RATE:-20000}
DURATION=${DURATION:-20}
EVERY=${EVERY:-997}
N=$((RATE * DURATION))
cargo build --release --quiet
BIN=$PWD/target/release/tidewatch
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port)
cleanup() { kill "${broker:-}" "${tw:-}" "${loader:-}" 2>/dev/null || true; [ -n "${KEEP:-}" ] && cp -r "$dir" "$KEEP"; rm -rf "$dir"; }
trap cleanup EXIT

cat > "$dir/mosquitto.conf" <<CONF
user root
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
max_inflight_messages ${INFLIGHT:-1000}
CONF
mosquitto -c "$dir/mosquitto.conf" >/dev/null 2>&1 & broker=$!
sleep 0.5

$BIN load --broker "127.0.0.1:$port" --count 1 --stations 1000 --qos 0 --write-stations "$dir/stations.toml" --topic-prefix warmup >/dev/null
cat > "$dir/rules.toml" <<'RULES'
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
levels = [{ severity = "yellow", above = "station.warning_level" }]

[[rule]]
id = "level.held"
select = { quantity = "water_level" }
kind = "threshold"
for = "1m"
levels = [{ severity = "yellow", above = "station.warning_level" }]
RULES
cat > "$dir/tidewatch.toml" <<CONF
stations = "stations.toml"
rules = ["rules.toml"]
[engine]
workers = ${WORKERS:-2}
idle_source_timeout = "30s"
[mqtt]
broker = "127.0.0.1:$port"
client_id = "tidewatch-recovery"
[[mqtt.route]]
name = "json"
filter = "tidewatch/json/#"
format = "json"
[http]
listen = "127.0.0.1:$http"
[alerting]
store = "sqlite://alerts.db"
[output]
console = false
alerts_file = "alerts.jsonl"
[state]
dir = "state"
checkpoint_interval = "${CHECKPOINT:-5s}"
sync = "${SYNC:-normal}"
CONF
cd "$dir"
$BIN run --config tidewatch.toml >tw.log 2>&1 & tw=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http/healthz" 2>/dev/null | grep -q '"mqtt_connected":true' && break
  sleep 0.1
done

echo "publishing $N readings at $RATE/s (QoS 1); SIGKILL after $((DURATION / 2)) s, restarted at once"
$BIN load --broker "127.0.0.1:$port" --count "$N" --stations 1000 --qos 1 --rate "$RATE" \
  --crossing-every "$EVERY" >load.log 2>&1 & loader=$!
sleep $((DURATION / 2))
kill -9 $tw; wait $tw 2>/dev/null || true
before=$(wc -l < alerts.jsonl)
python3 - "$BIN" "$before" <<'PYTHON'
import os, subprocess, sys, time
bin_, before = sys.argv[1], int(sys.argv[2])
start = time.monotonic()
proc = subprocess.Popen([bin_, "run", "--config", "tidewatch.toml"], stdout=open("tw2.log", "w"), stderr=subprocess.STDOUT)
while True:
    with open("alerts.jsonl") as f:
        if sum(1 for _ in f) > before:
            break
    if time.monotonic() - start > 30:
        print("no alert within 30 s"); break
    time.sleep(0.002)
print(f"first alert after restart: {1000 * (time.monotonic() - start):.0f} ms after the new process started")
with open("pid", "w") as f:
    f.write(str(proc.pid))
PYTHON
tw=$(cat pid)
grep -h "last checkpoint found\|rule state restored\|reading log replayed" tw2.log | sed 's/^/  /'
wait $loader || true
sleep 2
curl -s "http://127.0.0.1:$http/metrics" | grep -E '^tidewatch_(readings_duplicate|readings_replayed|checkpoint_seconds|checkpoints_total)' | sed 's/^/  /'
