#!/usr/bin/env bash
# Kafka → rules → alerts throughput beside the raw rdkafka consume rate of the same run:
# N readings produced to a fresh topic on a real Apache Kafka (scripts/kafka.sh), drained
# once by a bare rdkafka consumer (`tidewatch load --kafka … --drain`) and once by
# Tidewatch (decode, validate, a threshold rule per reading, offsets committed after
# hand-off), each timed from process start to the last record.
# Usage: N=1000000 scripts/kafka-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
cargo build --release --quiet
BIN=target/release/tidewatch
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http=$(free_port)
eval "$(KAFKA_DATA_DIR="$dir/kafka" KAFKA_NUM_PARTITIONS=${PARTITIONS:-4} bash scripts/kafka.sh 2>/dev/null)"
cleanup() { kill "${tw:-}" 2>/dev/null || true; bash scripts/kafka.sh stop "$KAFKA_PID" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

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
[[source]]
kind = "kafka"
name = "kafka"
brokers = "$KAFKA_BOOTSTRAP"
group_id = "tidewatch-load"
[[source.route]]
name = "json"
topic = "readings"
format = "json"
[http]
listen = "127.0.0.1:$http"
[alerting]
store = "sqlite://alerts.db"
[output]
console = false
alerts_file = "alerts.jsonl"
dead_letter_file = "dead_letters.jsonl"
CONF
if [ -n "${STATE:-}" ]; then
  printf '[state]\ndir = "state"\ncheckpoint_interval = "%s"\n' "${CHECKPOINT:-5s}" >> "$dir/tidewatch.toml"
fi
$BIN load --kafka "$KAFKA_BOOTSTRAP" --kafka-topic readings --count "$N" --stations 1000 --write-stations "$dir/stations.toml"

start=$(date +%s.%N)
$BIN load --kafka "$KAFKA_BOOTSTRAP" --kafka-topic readings --count "$N" --drain
end=$(date +%s.%N)
base=$(python3 -c "print(f'{$N/($end-$start):.0f}')")
echo "raw rdkafka consumer: $N in $(python3 -c "print(f'{$end-$start:.2f}')") s from process start: $base records/s"

read -r ours streaming peak_mib < <(python3 - "$BIN" "$dir/tidewatch.toml" "$http" "$N" "$dir/tw.log" <<'PYTHON'
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
echo "tidewatch (kafka source → rules): $ours readings/s from process start ($streaming/s from its first readings), peak RSS $peak_mib MiB"
echo "tidewatch / raw consumer: $(python3 -c "print(f'{100*$ours/$base:.0f}')") %"
