#!/usr/bin/env bash
# Full-speed replay: N readings of 1,000 gauges as JSON lines through `tidewatch replay`
# (file source → JSON decode → validation → engine → alert workflow) with a threshold rule
# set, on one core (taskset -c 0) unless CORES is set. Prints readings/s from the file's
# first byte to its last reading handed to the engine, as the replay logs it.
# Usage: N=5000000 scripts/replay-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000000}
cargo build --release --quiet
BIN=target/release/tidewatch
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/rules.toml" <<'RULES'
[[rule]]
id = "level"
select = { quantity = "water_level" }
kind = "threshold"
levels = [{ severity = "yellow", above = "station.warning_level" }, { severity = "red", above = 20 }]
RULES
printf 'stations = "stations.toml"\nrules = ["rules.toml"]\n[engine]\nworkers = 1\nidle_source_timeout = "1h"\n' > "$dir/tidewatch.toml"
python3 - "$dir/readings.jsonl" "$dir/stations.toml" "$N" <<'PYTHON'
import sys
path, stations, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(stations, "w") as f:
    for i in range(1000):
        f.write(f'[[station]]\nid = "L{i}"\nname = "Load {i}"\ndomain = "water"\nlocation = [120.0, 30.0]\nregion = "330100"\nattributes = {{ warning_level = 10.0 }}\n')
t0 = 1_700_000_000_000
with open(path, "w") as f:
    lines = []
    for i in range(n):
        # Every 10,007th reading crosses the warning level (alerts too, not only readings).
        value = 15.0 if i % 10007 == 0 else 5.0 + (i % 1000) / 1000
        lines.append(f'{{"station":"L{i % 1000}","quantity":"water_level","value":{value:.3f},"time":{t0 + i}}}\n')
        if len(lines) == 100000:
            f.writelines(lines); lines = []
    f.writelines(lines)
PYTHON
echo "$(wc -c < "$dir/readings.jsonl") bytes, $N readings"
pin=(taskset -c "${CORES:-0}")
start=$(date +%s.%N)
"${pin[@]}" $BIN replay "$dir/readings.jsonl" --config "$dir/tidewatch.toml" --out "$dir/out" --quiet 2> "$dir/replay.log"
end=$(date +%s.%N)
grep -E "replay finished" "$dir/replay.log" || tail -n 5 "$dir/replay.log"
echo "whole command (start-up, replay, shutdown): $(python3 -c "print(f'{$N/($end-$start):.0f}')") readings/s on CPU(s) ${CORES:-0}"
echo "transitions: $(wc -l < "$dir/out/alerts.jsonl")"
