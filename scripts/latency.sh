#!/usr/bin/env bash
# Reading→alert latency at a steady rate over a real Mosquitto, beside the broker's own
# publish→delivery latency in the same run.
#
# `tidewatch load` publishes RATE readings/s (QoS 1) for 1000 stations; every EVERY-th
# reading crosses its station's warning level (the next one falls back). Tidewatch runs the
# example lateness (2m) and a roster whose only channel is an MQTT alert topic with
# group_wait = "0s", so the store, the outbox and the dispatcher are on the path. The load
# tool times each crossing from the moment it left for the socket to (a) its delivery to a
# plain subscriber and (b) the fire notice for its station on the alert topic.
#
# Usage: RATE=50000 DURATION=10 scripts/latency.sh   (needs mosquitto and mosquitto-clients)
# STATE=1 turns crash safety on (checkpoints every CHECKPOINT, default 5s; SYNC=full fsyncs).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
RATE=${RATE:-50000}
DURATION=${DURATION:-10}
EVERY=${EVERY:-997}   # prime: crossings visit every station, and a station's next reading falls back
WORKERS=${WORKERS:-2}
QOS=${QOS:-1}
SAMPLES=${SAMPLES:+--samples $SAMPLES}   # SAMPLES=FILE: every timed crossing, to see when slow ones happen
N=$((RATE * DURATION))
cargo build --release --quiet
BIN=target/release/tidewatch
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); http=$(free_port)
cleanup() { kill "${broker:-}" "${tw:-}" 2>/dev/null || true; [ -n "${KEEP_LOG:-}" ] && cp "$dir/tw.log" "$KEEP_LOG"; rm -rf "$dir"; }
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
RULES
cat > "$dir/duty.toml" <<DUTY
[channel.alert-topic]
kind = "mqtt"
broker = "127.0.0.1:$port"
topic = "tidewatch/alerts/{station}"
qos = 1

[[member]]
id = "duty"
name = "Duty officer"

[[team]]
id = "all"
name = "Everyone"
default = true
channels = ["alert-topic"]
DUTY
cat > "$dir/tidewatch.toml" <<CONF
stations = "stations.toml"
rules = ["rules.toml"]
[engine]
workers = $WORKERS
allowed_lateness = "2m"
idle_source_timeout = "30s"
[mqtt]
broker = "127.0.0.1:$port"
client_id = "tidewatch-latency"
[[mqtt.route]]
name = "json"
filter = "tidewatch/json/#"
format = "json"
[http]
listen = "127.0.0.1:$http"
[alerting]
store = "sqlite://alerts.db"
duty = "duty.toml"
group_wait = "0s"
[output]
console = false
CONF
if [ -n "${STATE:-}" ]; then   # crash safety on: checkpoints and the reading log
  printf '[state]\ndir = "state"\ncheckpoint_interval = "%s"\nsync = "%s"\n' "${CHECKPOINT:-5s}" "${SYNC:-normal}" >> "$dir/tidewatch.toml"
fi
$BIN run --config "$dir/tidewatch.toml" >"$dir/tw.log" 2>&1 & tw=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http/healthz" 2>/dev/null | grep -q '"mqtt_connected":true' && break
  sleep 0.1
done

echo "publishing $N readings at $RATE/s (QoS $QOS), one in $EVERY crossing the warning level; $WORKERS workers"
$BIN load --broker "127.0.0.1:$port" --count "$N" --stations 1000 --qos "$QOS" --rate "$RATE" \
  --crossing-every "$EVERY" --alerts-topic 'tidewatch/alerts/#' $SAMPLES
curl -s "http://127.0.0.1:$http/healthz" | python3 -c 'import json,sys; h=json.load(sys.stdin); print("tidewatch:", h["readings"], "readings,", h["dead_letters"], "dead letters")'
