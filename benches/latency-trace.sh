#!/usr/bin/env bash
# Why a latency-toxic message came late: the scheduler's view of every late message.
#
#   benches/latency-trace.sh                 # 10 rounds of 200 messages 20 ms apart
#   ROUNDS=20 LATE_MS=0.3 benches/latency-trace.sh
#
# Starts a `toxi-server` (built if `target/release` has none) with one proxy and a
# `latency=50` toxic on upstream, in front of a sink on 127.0.0.1 (ports picked at run
# time). A client sends 16-byte messages through it, one every GAP_MS, and the sink takes
# each arrival's kernel receive timestamp (`SO_TIMESTAMPNS`), the way an external harness
# times the toxic. Meanwhile `perf record` traces every CPU's scheduler (`sched_switch`,
# `sched_wakeup`), hrtimer expiries and `sendto` calls. For every message later than
# LATE_MS it prints when toxi's thread was woken against the deadline, on which CPU, how
# long it then waited to run and what ran on that CPU meanwhile, and when it wrote. A
# summary counts the late messages by what held the CPU. KEEP=1 keeps the trace
# (`perf script` text) and the late messages in the temporary directory. Needs perf with access to the
# tracepoints (root, or perf_event_paranoid -1) and python3; CI does not run it.
# Everything it starts is stopped on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-10}
MSGS=${MSGS:-200}
GAP_MS=${GAP_MS:-20}
LATENCY_MS=${LATENCY_MS:-50}
LATE_MS=${LATE_MS:-0.5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOXI_SERVER=${TOXI_SERVER_BIN:-$ROOT/target/release/toxi-server}

for tool in perf python3 curl; do
  command -v "$tool" >/dev/null || { echo "latency-trace: $tool not found" >&2; exit 2; }
done
if ! perf stat -e sched:sched_switch true >/dev/null 2>&1; then
  echo "latency-trace: perf cannot read the sched tracepoints here (needs root or perf_event_paranoid -1)" >&2
  exit 2
fi
TOOL=latency-trace
KEEP_DIR=${KEEP:-}
# shellcheck source=benches/common.sh
source "$ROOT/benches/common.sh" /tmp/toxi-latency-trace.XXXXXX

API=$(free_port)
"$TOXI_SERVER" -host 127.0.0.1 -port "$API" >"$DIR/toxi.log" 2>&1 &
PIDS+=($!)
wait_port "$API"
curl -sf "http://127.0.0.1:$API/version" >/dev/null || { echo "latency-trace: no API on $API" >&2; exit 1; }

# The client and the sink. Writes one JSON line per late message to stdout:
# the sender's monotonic clock before its `send`, the arrival (kernel timestamp, moved to
# the monotonic clock) and the error, all in seconds.
cat >"$DIR/drive.py" <<'EOF'
import json, socket, struct, sys, threading, time, urllib.request

api, rounds, n, gap, latency, late = sys.argv[1:7]
rounds, n, gap, latency, late = int(rounds), int(n), float(gap) / 1e3, float(latency), float(late)
SO_TIMESTAMPNS = 35

def call(method, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", method=method,
                                 data=json.dumps(body).encode())
    urllib.request.urlopen(req).read()

sink = socket.socket()
sink.bind(("127.0.0.1", 0))
sink.listen(8)
spare = socket.socket()
spare.bind(("127.0.0.1", 0))
listen = spare.getsockname()[1]
spare.close()
call("POST", "/proxies", {"name": "trace", "listen": f"127.0.0.1:{listen}",
                          "upstream": f"127.0.0.1:{sink.getsockname()[1]}"})
call("POST", "/proxies/trace/toxics", {"name": "latency", "type": "latency", "stream": "upstream",
                                       "attributes": {"latency": int(latency), "jitter": 0}})
# Realtime minus monotonic, to put the kernel's (realtime) receive stamps on perf's clock.
offset = time.time_ns() - time.monotonic_ns()
errors = []
for r in range(rounds):
    client = socket.create_connection(("127.0.0.1", listen))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rx, _ = sink.accept()
    rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sent = []

    def send():
        base = time.monotonic()
        for i in range(n):
            sent.append(time.monotonic_ns())
            client.send(struct.pack("<QQ", i, 0))
            wait = base + gap * (i + 1) - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    sender = threading.Thread(target=send)
    sender.start()
    arrived, pending = [], b""
    while len(arrived) < n:
        data, ancillary, _, _ = rx.recvmsg(16 * n, 1024)
        if not data:
            sys.exit("latency-trace: the proxy closed the connection")
        stamp = None
        for _level, kind, value in ancillary:
            if kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", value[:16])
                stamp = sec * 10**9 + nsec - offset
        pending += data
        while len(pending) >= 16:
            pending = pending[16:]
            arrived.append(stamp)
    sender.join()
    client.close()
    rx.close()
    for i, (s, a) in enumerate(zip(sent, arrived)):
        err = (a - s) / 1e6 - latency
        errors.append(err)
        if abs(err) > late:
            print(json.dumps({"round": r, "msg": i, "sent": s / 1e9, "arrived": a / 1e9,
                              "error_ms": err}), flush=True)
errors.sort()
print(json.dumps({"messages": len(errors), "p50_ms": errors[len(errors) // 2],
                  "max_ms": max(abs(errors[0]), abs(errors[-1]))}), flush=True)
EOF

# Reads the late messages and the trace; prints one paragraph per late message.
cat >"$DIR/explain.py" <<'EOF'
import bisect, collections, json, re, sys

latency = float(sys.argv[3]) / 1e3
late = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
summary = late.pop() if late and "messages" in late[-1] else None
line_re = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$")
switches = collections.defaultdict(list)  # cpu -> [(t, next_comm, next_pid)]
runs = collections.defaultdict(list)      # tid -> [(t, cpu)]: switched in
sleeps = collections.defaultdict(list)    # tid -> [t]: switched out asleep
wakeups = collections.defaultdict(list)   # tid -> [(t, cpu)]
sends = []                                # toxi threads' sendto: (t, tid, cpu)
for raw in open(sys.argv[2], errors="replace"):
    m = line_re.match(raw)
    if not m:
        continue
    comm, tid, cpu, t, event, rest = m.groups()
    tid, cpu, t = int(tid), int(cpu), float(t)
    if event == "sched:sched_switch":
        f = dict(re.findall(r"(\w+)=(\S+)", rest))
        next_pid = int(f.get("next_pid", -1))
        switches[cpu].append((t, f.get("next_comm", "?"), next_pid))
        runs[next_pid].append((t, cpu))
        if f.get("prev_state") == "S":
            sleeps[int(f.get("prev_pid", -1))].append(t)
    elif event == "sched:sched_wakeup":
        f = dict(re.findall(r"(\w+)=(\S+)", rest))
        wakeups[int(f["pid"])].append((t, int(f["target_cpu"])))
    elif event == "syscalls:sys_enter_sendto" and comm.startswith("toxi-"):
        sends.append((t, tid, cpu))
sends.sort()
send_times = [s[0] for s in sends]

def running_on(cpu, start, end):
    """The tasks on `cpu` between `start` and `end`, with how long each ran in between."""
    seq = switches[cpu]
    times = [s[0] for s in seq]
    i = max(bisect.bisect_right(times, start) - 1, 0)
    out = collections.OrderedDict()
    while i < len(seq) and seq[i][0] < end:
        t0 = max(seq[i][0], start)
        t1 = min(seq[i + 1][0] if i + 1 < len(seq) else end, end)
        name = f"{seq[i][1]} (pid {seq[i][2]})" if seq[i][2] else "idle"
        out[name] = out.get(name, 0.0) + max(t1 - t0, 0.0)
        i += 1
    return out

def who(name):
    """`name (pid N)` with the process it belongs to and its nice value, while it runs."""
    m = re.match(r"(.*) \(pid (\d+)\)$", name)
    if not m:
        return name
    try:
        status = dict(l.split(":", 1) for l in open(f"/proc/{m[2]}/status").read().splitlines())
        tgid = status["Tgid"].strip()
        stat = open(f"/proc/{m[2]}/stat").read().rsplit(")", 1)[1].split()
        nice = int(stat[16])
        proc = open(f"/proc/{tgid}/comm").read().strip()
        owner = "" if tgid == m[2] else f" of {proc}"
        return f"{m[1]} (pid {m[2]}{owner}, nice {nice})"
    except (OSError, KeyError, IndexError, ValueError):
        return name


def ms(x):
    return f"{x * 1e3:+.3f} ms"

culprits = collections.Counter()
for m in late:
    deadline = m["sent"] + latency
    head = f"round {m['round']} message {m['msg']}: {m['error_ms']:+.3f} ms late"
    # toxi's write: its last sendto before the arrival stamp (taken inside that call).
    k = bisect.bisect_right(send_times, m["arrived"] + 20e-6) - 1
    if k < 0 or sends[k][0] < deadline - 0.005:
        print(f"{head}; no write of toxi's found in the trace")
        continue
    t_send, tid, cpu = sends[k]
    # The thread's last sleep before the write, and its wake-up and run after it (either
    # may be missing: the trace has no events from some contexts).
    t_sleep = max((t for t in sleeps[tid] if t < t_send), default=deadline - 0.005)
    woke = max((w for w in wakeups[tid] if t_sleep <= w[0] <= t_send), default=None)
    ran = min((r for r in runs[tid] if t_sleep <= r[0] <= t_send), default=None)
    print(f"{head} (times against the deadline, send + {latency * 1e3:g} ms)")
    line = f"  thread {tid} asleep at {ms(t_sleep - deadline)}"
    if woke:
        line += f", woken at {ms(woke[0] - deadline)} for CPU {woke[1]}"
    if ran:
        line += f", ran at {ms(ran[0] - deadline)} on CPU {ran[1]}"
    print(line + f", wrote at {ms(t_send - deadline)} on CPU {cpu}")
    until = ran[0] if ran else t_send
    if woke and woke[0] > deadline and woke[0] - deadline >= until - woke[0]:
        if set(running_on(woke[1], deadline - 0.0003, woke[0])) <= {"idle"}:
            print(f"  CPU {woke[1]} was idle: its timer interrupt came late")
            culprits["the timer interrupt reached an idle vCPU late"] += 1
            continue
    # What held the CPU it ran on, from the deadline (or its wake-up, if later) to its run.
    since = max(deadline - 0.0003, woke[0] if woke else t_sleep)
    held = running_on(cpu, since, until)
    busy = [(who(n), d) for n, d in held.items() if d > 0 and n != "idle" and f"(pid {tid})" not in n]
    if busy:
        print(f"  meanwhile CPU {cpu} ran " + ", ".join(f"{n} for {d * 1e3:.3f} ms" for n, d in busy))
        culprits["held up by " + max(busy, key=lambda x: x[1])[0]] += 1
    else:
        print(f"  CPU {cpu} ran nothing else meanwhile: the vCPU itself ran it late")
        culprits["an idle vCPU slow to switch to the woken thread"] += 1
    for c in [c for c in switches if c != cpu and until > since]:
        idle = running_on(c, since, until).get("idle", 0.0)
        print(f"  CPU {c} was idle for {idle * 1e3:.3f} of those {(until - since) * 1e3:.3f} ms")
if summary:
    print(f"\n{summary['messages']} messages: p50 error {summary['p50_ms']:.3f} ms,"
          f" max {summary['max_ms']:.3f} ms; {len(late)} later than the threshold")
for name, count in culprits.most_common():
    print(f"  {count}: {name}")
EOF

echo "toxi-server $("$TOXI_SERVER" -version 2>/dev/null || true), $(nproc) CPUs," \
  "$ROUNDS rounds of $MSGS messages ${GAP_MS} ms apart, latency=$LATENCY_MS, late > $LATE_MS ms"
perf record -q -a -k mono -o "$DIR/perf.data" \
  -e sched:sched_switch,sched:sched_wakeup,timer:hrtimer_expire_entry,syscalls:sys_enter_sendto \
  -- python3 "$DIR/drive.py" "$API" "$ROUNDS" "$MSGS" "$GAP_MS" "$LATENCY_MS" "$LATE_MS" \
  >"$DIR/late.jsonl" 2>"$DIR/perf.log" || { cat "$DIR/perf.log" >&2; exit 1; }
perf script -i "$DIR/perf.data" --ns -F comm,tid,cpu,time,event,trace >"$DIR/trace.txt" 2>/dev/null
python3 "$DIR/explain.py" "$DIR/late.jsonl" "$DIR/trace.txt" "$LATENCY_MS"
