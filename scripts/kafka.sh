#!/usr/bin/env bash
# scripts/kafka.sh (from ../shared/kafka/start-kafka.sh; grep -q in a pipeline under pipefail fixed) — start a single-node Apache Kafka broker (KRaft: broker+controller in one JVM,
# no ZooKeeper) on 127.0.0.1, using jars fetched from Maven Central by mvn.
#
#   ./start-kafka.sh            # start; prints KAFKA_BOOTSTRAP=127.0.0.1:PORT and KAFKA_PID=PID
#   ./start-kafka.sh fetch      # only fetch the jars into the cache
#   ./start-kafka.sh stop PID   # SIGTERM (controlled shutdown), wait, SIGKILL after 60 s
#   eval "$(./start-kafka.sh)"  # the KEY=VALUE lines on stdout can be eval'ed; chatter goes to stderr
#
# Environment (all optional):
#   KAFKA_VERSION          Kafka release on Maven Central (default 4.1.1)
#   KAFKA_LIBS_DIR         jar cache (default ~/.cache/kafka-libs); refetched when its version stamp differs
#   KAFKA_PORT             client (PLAINTEXT) port (default: a free port)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default: a free port)
#   KAFKA_DATA_DIR         data dir (default: a new mktemp -d). If it already holds a formatted log dir
#                          it is reused as is, on the same ports (restart keeps topics and offsets).
#   KAFKA_HEAP_OPTS        default "-Xms256m -Xmx512m"
#   KAFKA_START_TIMEOUT    seconds to wait for the broker (default 180)
#   KAFKA_NUM_PARTITIONS   default partitions for auto-created topics (default 4)
#   MVN                    maven command (default mvn)
# Needs: java 17+, mvn (first run only, and Maven Central reachable), bash; python3 or unzip optional.
set -euo pipefail

log() { printf '[start-kafka] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- stop mode
if [[ "${1:-}" == "stop" ]]; then
  pid="${2:?usage: $0 stop PID}"
  kill -TERM "$pid" 2>/dev/null || { log "pid $pid not running"; exit 0; }
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || { log "pid $pid stopped"; exit 0; }; sleep 0.1; done
  log "pid $pid still alive after 60 s, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
  exit 0
fi

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$HOME/.cache/kafka-libs}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-4}"
MVN="${MVN:-mvn}"
command -v java >/dev/null || die "java not found (Kafka 4.x needs Java 17+)"
t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# ---------------------------------------------------------------- (a) jars
fetch_jars() {
  command -v "$MVN" >/dev/null || die "mvn not found and $KAFKA_LIBS_DIR has no jars for Kafka $KAFKA_VERSION"
  local work; work="$(mktemp -d)"
  cat > "$work/pom.xml" <<'POM'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kafka</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <kafka.version>4.1.1</kafka.version>
    <slf4j.version>2.0.17</slf4j.version>
    <log4j2.version>2.24.3</log4j2.version>
  </properties>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${kafka.version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>${slf4j.version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>${log4j2.version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>${log4j2.version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${log4j2.version}</version></dependency>
  </dependencies>
  <build><pluginManagement><plugins>
    <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin>
  </plugins></pluginManagement></build>
</project>
POM
  local out="$KAFKA_LIBS_DIR.tmp.$$"
  rm -rf "$out"
  log "fetching Kafka $KAFKA_VERSION jars with mvn into $KAFKA_LIBS_DIR ..."
  local tf; tf=$(date +%s.%N)
  if ! (cd "$work" && MAVEN_OPTS="${MAVEN_OPTS:--Xmx512m}" "$MVN" -B -q -Dstyle.color=never \
          org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies -Dkafka.version="$KAFKA_VERSION" \
          -DincludeScope=runtime -DoutputDirectory="$out" >"$work/mvn.log" 2>&1); then
    tail -n 30 "$work/mvn.log" >&2
    rm -rf "$out"
    die "mvn could not fetch the jars (is Maven Central reachable? full log: $work/mvn.log)"
  fi
  echo "$KAFKA_VERSION" > "$out/.kafka-version"
  rm -rf "$KAFKA_LIBS_DIR"; mkdir -p "$(dirname "$KAFKA_LIBS_DIR")"; mv "$out" "$KAFKA_LIBS_DIR"
  rm -rf "$work"
  log "fetched $(ls "$KAFKA_LIBS_DIR"/*.jar | wc -l) jars ($(du -sh "$KAFKA_LIBS_DIR" | cut -f1)) in $(elapsed "$tf") s"
}
if [[ "$(cat "$KAFKA_LIBS_DIR/.kafka-version" 2>/dev/null)" != "$KAFKA_VERSION" ]]; then
  fetch_jars
else
  log "jar cache warm: $KAFKA_LIBS_DIR (Kafka $KAFKA_VERSION)"
fi
CP="$KAFKA_LIBS_DIR/*"
if [[ "${1:-}" == "fetch" ]]; then exit 0; fi   # only fill the jar cache (scripts/test.sh)

# find which class names this Kafka version uses (they have moved between releases)
jar_has() { # jar_has path/Cls.class -> 0 if some jar in the cache holds it
  local j
  for j in "$KAFKA_LIBS_DIR"/*.jar; do
    if command -v unzip >/dev/null; then unzip -Z1 "$j" 2>/dev/null | grep -xF "$1" >/dev/null && return 0
    elif command -v python3 >/dev/null; then python3 - "$j" "$1" <<'PY' && return 0
import sys, zipfile; sys.exit(0 if sys.argv[2] in zipfile.ZipFile(sys.argv[1]).namelist() else 1)
PY
    else jar tf "$j" 2>/dev/null | grep -xF "$1" >/dev/null && return 0; fi
  done
  return 1
}
pick_class() { local c; for c in "$@"; do jar_has "${c//.//}.class" && { echo "$c"; return 0; }; done; return 1; }
MAIN_CLASS="$(pick_class kafka.Kafka org.apache.kafka.server.Kafka)" || die "no Kafka main class in $KAFKA_LIBS_DIR"
STORAGE_CLASS="$(pick_class kafka.tools.StorageTool org.apache.kafka.tools.StorageTool)" || die "no StorageTool class in $KAFKA_LIBS_DIR"

# ---------------------------------------------------------------- (b) ports, config, format
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  if command -v python3 >/dev/null; then
    for _ in 1 2 3 4 5; do
      p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      [[ "$p" != "${1:-}" ]] && port_free "$p" && { echo "$p"; return 0; }
    done
  fi
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 30000 ))
    [[ "$p" != "${1:-}" ]] && port_free "$p" && { echo "$p"; return 0; }
  done
  return 1
}
DATA="${KAFKA_DATA_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kafka.XXXXXX")}"
mkdir -p "$DATA/logs"
DATA="$(cd "$DATA" && pwd)"
if [[ -f "$DATA/server.properties" ]]; then  # restart on an old data dir: keep its ports unless told
  KAFKA_PORT="${KAFKA_PORT:-$(sed -n 's/^listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\),.*/\1/p' "$DATA/server.properties")}"
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$(sed -n 's/^controller.quorum.voters=1@127.0.0.1:\([0-9]*\)$/\1/p' "$DATA/server.properties")}"
fi
PORT="${KAFKA_PORT:-$(free_port)}" || die "no free port"
CPORT="${KAFKA_CONTROLLER_PORT:-$(free_port "$PORT")}" || die "no free port"
port_free "$PORT"  || die "port $PORT is in use"
port_free "$CPORT" || die "port $CPORT is in use"
cat > "$DATA/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=$KAFKA_NUM_PARTITIONS
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
auto.create.topics.enable=true
EOF
cat > "$DATA/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
JAVA_OPTS=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
           "-Dlog4j2.configurationFile=$DATA/log4j2.properties" "-Dkafka.logs.dir=$DATA")

if [[ -f "$DATA/logs/meta.properties" ]]; then
  log "reusing formatted log dir $DATA/logs"
else
  # cluster id: 16 random bytes, base64url without padding, as 'StorageTool random-uuid' prints it
  # (saves a JVM start); like Kafka's Uuid.randomUuid, never one starting with '-' (read as an option)
  CLUSTER_ID="-"
  while [[ "$CLUSTER_ID" == -* ]]; do
    CLUSTER_ID="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  tfmt=$(date +%s.%N)
  java -Xmx256m "${JAVA_OPTS[@]}" -cp "$CP" "$STORAGE_CLASS" format \
       -t "$CLUSTER_ID" -c "$DATA/server.properties" >"$DATA/format.out" 2>&1 \
    || { cat "$DATA/format.out" >&2; die "storage format failed"; }
  log "formatted $DATA/logs (cluster id $CLUSTER_ID) in $(elapsed "$tfmt") s"
fi

# ---------------------------------------------------------------- start
tstart=$(date +%s.%N)
# shellcheck disable=SC2086
nohup java $KAFKA_HEAP_OPTS "${JAVA_OPTS[@]}" -cp "$CP" "$MAIN_CLASS" "$DATA/server.properties" \
  >"$DATA/kafka.out" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$DATA/kafka.pid"
trap 'kill -TERM "$PID" 2>/dev/null; exit 130' INT TERM   # don't leave a half-started broker behind

# ---------------------------------------------------------------- (c) wait until ready
deadline=$(( $(date +%s) + KAFKA_START_TIMEOUT ))
accept_since=""
while :; do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 40 "$DATA/kafka.out" >&2; die "broker exited during startup (log: $DATA/kafka.out)"
  fi
  if grep -q "Kafka Server started" "$DATA/kafka.out" 2>/dev/null && ! port_free "$PORT"; then break; fi
  if ! port_free "$PORT"; then  # accepting, but no log line (e.g. logging misconfigured): give it 15 s
    accept_since="${accept_since:-$(date +%s)}"
    (( $(date +%s) - accept_since >= 15 )) && { log "WARNING: port open but no 'Kafka Server started' line seen"; break; }
  fi
  if (( $(date +%s) >= deadline )); then
    tail -n 40 "$DATA/kafka.out" >&2; kill -TERM "$PID" 2>/dev/null || true
    die "broker not ready after $KAFKA_START_TIMEOUT s (log: $DATA/kafka.out)"
  fi
  sleep 0.2
done
trap - INT TERM
log "broker ready in $(elapsed "$tstart") s after JVM start ($(elapsed "$t0") s in all); stop with: kill -TERM $PID  (or $0 stop $PID)"

# ---------------------------------------------------------------- (d) report
cat > "$DATA/kafka.env" <<EOF
KAFKA_BOOTSTRAP=127.0.0.1:$PORT
KAFKA_PID=$PID
KAFKA_DATA_DIR=$DATA
KAFKA_LOG=$DATA/kafka.out
EOF
cat "$DATA/kafka.env"
