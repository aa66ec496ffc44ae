#!/usr/bin/env bash
# Small-request profile of toxi and HAProxy: where a keep-alive HTTP request's cost goes.
#
#   benches/profile-small.sh            # 5 s per run, 10 connections, 2 wrk threads
#   SECS=10 CONNS=50 benches/profile-small.sh
#   CLOSE=1 benches/profile-small.sh    # every request on a new connection
#                                       # (`Connection: close`): the cost per connection
#
# An nginx upstream answers every request with an 11-byte "hello world" over keep-alive.
# For each proxy (toxi-server with one TCP proxy, HAProxy in TCP mode with 2 threads) wrk
# runs through it up to four times: alone (req/s and the proxy's CPU µs per request, from
# /proc/PID/task/*/schedstat), under `strace -c -f` (syscalls per request by name), under
# `perf stat` (context switches and CPU migrations per request) and under `perf stat` on
# the kernel's syscall tracepoints (syscalls per request again, without strace's effect on
# the proxies' timing). strace slows the proxy a lot, so only its per-request counts are
# used, never its rate. wrk straight to nginx gives the direct rate for reference.
# Loopback only, ports picked at run time; everything started here is stopped on exit.
# Needs nginx, haproxy and wrk; strace and perf are optional (their part is skipped with
# a message).
set -euo pipefail

SECS=${SECS:-5}
CONNS=${CONNS:-10}
THREADS=${THREADS:-2}
HEADER=()
[ "${CLOSE:-0}" = 1 ] && HEADER=(-H "Connection: close")
TOP=${TOP:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOXI_SERVER=${TOXI_SERVER_BIN:-$ROOT/target/release/toxi-server}
HAPROXY=${TOXI_BENCH_HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

for tool in wrk curl python3 "$NGINX" "$HAPROXY"; do
  command -v "$tool" >/dev/null || { echo "profile-small: $tool not found" >&2; exit 2; }
done
TOOL=profile-small
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh" /tmp/toxi-profile.XXXXXX

# Sum of the CPU nanoseconds of every thread of process $1.
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}

# wrk through 127.0.0.1:$1 for ${2:-$SECS} s; prints "requests rate".
run_wrk() {
  local secs=${2:-$SECS}
  timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" "${HEADER[@]}" "http://127.0.0.1:$1/" >"$DIR/wrk.out"
  awk '/requests in/ {n = $1} /^Requests\/sec/ {r = $2} END {print n, r}' "$DIR/wrk.out"
}

# --- upstream: nginx, one worker, 11-byte body, keep-alive without limit -------------
UP=$(free_port)
mkdir -p "$DIR/nginx"
cat >"$DIR/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $DIR/nginx/error.log warn;
pid $DIR/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $DIR/nginx;
  proxy_temp_path $DIR/nginx;
  fastcgi_temp_path $DIR/nginx;
  uwsgi_temp_path $DIR/nginx;
  scgi_temp_path $DIR/nginx;
  server {
    listen 127.0.0.1:$UP;
    default_type text/plain;
    location / { return 200 "hello world"; }
  }
}
EOF
"$NGINX" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" &
PIDS+=($!)
wait_port "$UP"
body=$(curl -s "http://127.0.0.1:$UP/")
[ "$body" = "hello world" ] || { echo "profile-small: nginx answered '$body'" >&2; exit 1; }

# --- toxi-server with one TCP proxy ---------------------------------------------------
API=$(free_port)
TOXI=$(free_port)
"$TOXI_SERVER" -host 127.0.0.1 -port "$API" >"$DIR/toxi.log" 2>&1 &
TOXI_PID=$!
PIDS+=("$TOXI_PID")
wait_port "$API"
curl -sf -X POST "http://127.0.0.1:$API/proxies" \
  -d "{\"name\":\"small\",\"listen\":\"127.0.0.1:$TOXI\",\"upstream\":\"127.0.0.1:$UP\"}" >/dev/null
wait_port "$TOXI"

# --- HAProxy in TCP mode, 2 threads ---------------------------------------------------
HAP=$(free_port)
cat >"$DIR/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 2000
defaults
  mode tcp
  timeout connect 10s
  timeout client 1h
  timeout server 1h
listen small
  bind 127.0.0.1:$HAP
  server small 127.0.0.1:$UP
EOF
"$HAPROXY" -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 &
HAP_PID=$!
PIDS+=("$HAP_PID")
wait_port "$HAP"

HAVE_STRACE=1
command -v strace >/dev/null || { HAVE_STRACE=0; echo "strace not found: no syscall counts"; }
HAVE_PERF=1
if ! perf stat -e context-switches true >/dev/null 2>&1; then
  HAVE_PERF=0
  echo "perf stat -e context-switches does not work here: no context-switch counts"
fi
# Syscall counts without strace, from the kernel's syscall tracepoints: strace stops the
# proxy at every call, which changes how HAProxy batches its work (it then skips
# `shutdown` and calls `epoll_wait` a third as often), so these are the counts to compare.
CALLS="sendto recvfrom epoll_wait epoll_ctl accept4 shutdown close setsockopt getpeername write futex"
TRACEPOINTS=""
if [ "$HAVE_PERF" = 1 ] && perf stat -e syscalls:sys_enter_sendto true >/dev/null 2>&1; then
  for c in $CALLS; do TRACEPOINTS="$TRACEPOINTS${TRACEPOINTS:+,}syscalls:sys_enter_$c"; done
else
  echo "perf cannot count syscall tracepoints here (needs root or perf_event_paranoid <= -1): strace counts only"
fi

echo "wrk -t$THREADS -c$CONNS -d${SECS}s ${HEADER[*]}, nginx upstream (11-byte body), $(nproc) CPUs"
read -r n rate < <(run_wrk "$UP")
echo
echo "direct (wrk -> nginx): $rate req/s"

profile() {
  local name=$1 port=$2 pid=$3
  echo
  echo "== $name (pid $pid) =="
  run_wrk "$port" 1 >/dev/null # warm-up of the connections' first requests
  local c0 c1 n rate
  c0=$(cpu_ns "$pid")
  read -r n rate < <(run_wrk "$port")
  c1=$(cpu_ns "$pid")
  echo "req/s:                $rate"
  awk -v c=$((c1 - c0)) -v n="$n" 'BEGIN {printf "CPU µs/request:       %.2f\n", c / 1000 / n}'

  if [ "$HAVE_STRACE" = 1 ]; then
    timeout $((SECS + 40)) strace -c -f -q -p "$pid" -o "$DIR/strace.out" &
    local st=$!
    sleep 1 # attach to every thread before the load starts
    read -r n _ < <(run_wrk "$port")
    kill -INT "$st" 2>/dev/null || true
    wait "$st" 2>/dev/null || true
    # strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {tot += $4}
      END {printf "syscalls/request:     %.2f total (%d requests under strace)\n", tot / n, n}' \
      "$DIR/strace.out"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {printf "  %-18s %.3f\n", $NF, $4 / n}' \
      "$DIR/strace.out" | sort -k2 -nr | head -n "$TOP"
  fi

  if [ "$HAVE_PERF" = 1 ]; then
    perf stat -x, -e context-switches,cpu-migrations,task-clock -p "$pid" \
      -o "$DIR/perf.out" &
    local pf=$!
    sleep 0.5
    read -r n _ < <(run_wrk "$port")
    kill -INT "$pf" 2>/dev/null || true
    wait "$pf" 2>/dev/null || true
    awk -F, -v n="$n" '
      $3 == "context-switches" {printf "context switches/req: %.3f\n", $1 / n}
      $3 == "cpu-migrations"   {printf "CPU migrations/req:   %.4f\n", $1 / n}
      $3 == "task-clock"       {printf "task-clock µs/req:    %.2f (perf, whole window)\n", $1 * 1000 / n}
    ' "$DIR/perf.out"
  fi

  if [ -n "$TRACEPOINTS" ]; then
    perf stat -x, -e "$TRACEPOINTS" -p "$pid" -o "$DIR/calls.out" &
    local pc=$!
    sleep 0.5
    read -r n _ < <(run_wrk "$port")
    kill -INT "$pc" 2>/dev/null || true
    wait "$pc" 2>/dev/null || true
    echo "syscalls/request without strace (perf tracepoints):"
    awk -F, -v n="$n" '$3 ~ /^syscalls:sys_enter_/ {
        name = $3; sub(/^syscalls:sys_enter_/, "", name)
        if ($1 + 0 > 0) printf "  %-18s %.3f\n", name, $1 / n
      }' "$DIR/calls.out" | sort -k2 -nr
  fi
}

profile "toxi-server" "$TOXI" "$TOXI_PID"
profile "$("$HAPROXY" -v | head -1 | awk '{print "HAProxy", $3}') (TCP mode, nbthread 2)" "$HAP" "$HAP_PID"
