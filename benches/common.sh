# Shared by the bench scripts (`source`d, not run): the toxi-server build, a temporary
# directory whose processes are stopped on exit, and loopback port helpers.
#
# Before sourcing, a script sets TOOL (its name, for messages), ROOT and TOXI_SERVER; it
# may set KEEP_DIR to keep the temporary directory on exit. After sourcing it has DIR
# (made from $1, a mktemp template) and PIDS (add every process it starts).

if [ ! -x "$TOXI_SERVER" ]; then
  echo "building toxi-server (release)..." >&2
  (cd "$ROOT" && cargo build --release --bin toxi-server) >&2
fi

DIR=$(mktemp -d "$1")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_DIR:-}" ]; then echo "$TOOL: kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (at most 10 s) until 127.0.0.1:$1 accepts.
wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$TOOL: nothing listens on 127.0.0.1:$1" >&2
  tail -n 5 "$DIR"/*.log "$DIR"/nginx/error.log >&2 2>/dev/null
  exit 1
}
