#!/usr/bin/env bash
# Build the toxi container image with buildah -- no Docker daemon, no registry --
# and prove that it works.
#
#  1. builds static binaries into dist/ (scripts/static-build.sh);
#  2. builds the Dockerfile's `runtime` target (FROM scratch + prebuilt binaries)
#     with buildah, vfs storage and chroot isolation; --pull=never, so nothing
#     is ever fetched;
#  3. checks the image config (entrypoint, cmd, env, port, user, labels) and its
#     files (/toxiproxy, /toxiproxy-cli, /toxi-server, /toxi, all static);
#  4. runs the image: `--version` of both binaries; the server on loopback
#     answering GET /version; a proxy created through the API carrying bytes to
#     a local echo upstream and back; a second one whose upstream is
#     localhost:PORT (name resolution in the image); a latency toxic slowing
#     a round trip; the CLI in the image listing the proxy;
#  5. removes everything it made (processes, containers, image, storage).
#
# Usage: scripts/build-image.sh [--no-build] [--tag NAME] [--archive FILE]
#   --no-build      package the existing dist/toxi-server and dist/toxi
#   --tag NAME      image name (default: localhost/toxi:<version>)
#   --archive FILE  also save the image as a docker-archive tarball, loadable
#                   with `docker load -i FILE` or `podman load -i FILE`
#
# Environment: CARGO_TARGET_DIR, TOXI_DIST, TOXI_TARGET (see static-build.sh);
#   TOXI_SMOKE_TIMEOUT  seconds to wait for each readiness/IO step (default 30).
#
# Exit status: 0 image built and verified; 1 a step failed (the message starts
# with "FAIL:"); 2 bad usage; 77 buildah could not be installed or cannot run
# here (the line "SKIP: buildah unavailable: <reason>" is printed).
set -euo pipefail

readonly SKIP_CODE=77
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dist=${TOXI_DIST:-$root/dist}
timeout_s=${TOXI_SMOKE_TIMEOUT:-30}
build=1 tag="" archive=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --tag) [ $# -ge 2 ] || usage; tag=$2; shift ;;
    --tag=*) tag=${1#*=} ;;
    --archive) [ $# -ge 2 ] || usage; archive=$2; shift ;;
    --archive=*) archive=${1#*=} ;;
    -h|--help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
  shift
done

log() { echo "build-image: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: buildah unavailable: $*"; exit "$SKIP_CODE"; }

# --- state for cleanup --------------------------------------------------------
work="" server_pid="" echo_pid="" ctr="" mounted=0 image_built=0
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

stop_group() { # pid: TERM the process group it leads, KILL it after 5 s
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  [ -n "$server_pid" ] && stop_group "$server_pid"
  [ -n "$echo_pid" ] && stop_group "$echo_pid"
  if [ -n "$work" ] && [ -d "$work" ]; then
    if command -v buildah >/dev/null; then
      [ "$mounted" = 1 ] && bh umount "$ctr" >/dev/null 2>&1
      [ -n "$ctr" ] && bh rm "$ctr" >/dev/null 2>&1
      [ "$image_built" = 1 ] && bh rmi -f "$tag" >/dev/null 2>&1
      bh rm --all >/dev/null 2>&1
      bh rmi --all --force >/dev/null 2>&1
    fi
    rm -rf "$work"
  fi
  if [ "$rc" = 0 ]; then log "cleaned up"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v python3 >/dev/null || fail "python3 is required for the checks"
command -v curl >/dev/null || fail "curl is required for the checks"

# --- 1. static binaries -------------------------------------------------------
if [ "$build" = 1 ]; then
  log "building static binaries into $dist"
  TOXI_DIST=$dist "$root/scripts/static-build.sh" || fail "static build failed"
fi
for b in toxi-server toxi; do
  [ -x "$dist/$b" ] || fail "$dist/$b missing (run without --no-build)"
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)".*/\1/p' "$root/Cargo.toml" | head -n1)
[ -n "$version" ] || fail "cannot read the workspace version from Cargo.toml"
source_url=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository *= *"\(.*\)".*/\1/p' "$root/Cargo.toml" | head -n1)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tag=${tag:-localhost/toxi:$version}

# --- buildah ------------------------------------------------------------------
if ! command -v buildah >/dev/null; then
  [ "$(id -u)" = 0 ] || skip "not installed, and not root to install it"
  command -v apt-get >/dev/null || skip "not installed, and apt-get is not available"
  log "installing buildah with apt-get"
  apt_log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y buildah >"$apt_log" 2>&1; then
    if ! { apt-get update && apt-get install -y buildah; } >>"$apt_log" 2>&1; then
      reason=$(grep -E '^(E|W):' "$apt_log" | tail -n1)
      rm -f "$apt_log"
      skip "apt-get install buildah failed: ${reason:-see apt-get output}"
    fi
  fi
  rm -f "$apt_log"
  command -v buildah >/dev/null || skip "apt-get installed no buildah command"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/toxi-image.XXXXXX")
if ! info_err=$(bh info 2>&1 >/dev/null); then
  skip "\`buildah info\` failed: $(printf '%s' "$info_err" | tail -n1)"
fi
log "$(buildah --version)"

# --- 2. build the image from a minimal context --------------------------------
ctx=$work/context
mkdir -p "$ctx/dist" "$ctx/deploy/docker"
cp "$root/Dockerfile" "$ctx/Dockerfile"
cp -R "$root/deploy/docker/rootfs" "$ctx/deploy/docker/rootfs"
cp "$dist/toxi-server" "$dist/toxi" "$ctx/dist/"

log "building $tag (target runtime, FROM scratch, --pull=never)"
build_args=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
[ -n "$source_url" ] && build_args+=(--build-arg "SOURCE=$source_url")
bh bud --isolation chroot --pull=never --layers=false --target runtime \
  "${build_args[@]}" -f "$ctx/Dockerfile" -t "$tag" "$ctx" >"$work/bud.log" 2>&1 ||
  { cat "$work/bud.log" >&2; fail "buildah bud failed"; }
image_built=1
log "built $tag ($(bh images --noheading --format '{{.ID}} {{.Size}}' "$tag"))"

# --- 3. image config and files ------------------------------------------------
bh inspect --type image "$tag" >"$work/inspect.json" ||
  fail "buildah inspect failed"
python3 - "$work/inspect.json" "$version" <<'PY' || fail "image config does not match the contract"
import json, sys
cfg = json.load(open(sys.argv[1]))["OCIv1"]["config"]; version = sys.argv[2]
labels = cfg.get("Labels") or {}
checks = [
    ("Entrypoint", cfg.get("Entrypoint") == ["/toxiproxy"], cfg.get("Entrypoint")),
    ("Cmd", cfg.get("Cmd") == ["-host=0.0.0.0"], cfg.get("Cmd")),
    ("Env LOG_LEVEL=info", "LOG_LEVEL=info" in (cfg.get("Env") or []), cfg.get("Env")),
    ("ExposedPorts 8474/tcp", "8474/tcp" in (cfg.get("ExposedPorts") or {}), cfg.get("ExposedPorts")),
    ("User 65532:65532", cfg.get("User") == "65532:65532", cfg.get("User")),
    ("label licenses=MIT", labels.get("org.opencontainers.image.licenses") == "MIT", labels),
    ("label version", labels.get("org.opencontainers.image.version") == version, labels),
]
for key in ("title", "description", "source", "url", "revision", "created"):
    k = "org.opencontainers.image." + key
    checks.append(("label " + key, bool(labels.get(k)), labels.get(k)))
bad = [(n, v) for n, ok, v in checks if not ok]
for n, ok, v in checks:
    print("  %-24s %s" % (n, "ok" if ok else "WRONG: %r" % (v,)))
sys.exit(1 if bad else 0)
PY

ctr=$(bh from --pull-never --name "toxi-smoke-$$" "$tag") || fail "buildah from $tag failed"
mnt=$(bh mount "$ctr") || fail "buildah mount failed"
mounted=1
for f in toxiproxy toxiproxy-cli toxi-server toxi; do
  if ! { [ -f "$mnt/$f" ] && [ -x "$mnt/$f" ]; }; then
    fail "/$f missing or not executable in the image"
  fi
done
cmp -s "$mnt/toxiproxy" "$dist/toxi-server" || fail "/toxiproxy is not dist/toxi-server"
cmp -s "$mnt/toxi-server" "$dist/toxi-server" || fail "/toxi-server is not dist/toxi-server"
cmp -s "$mnt/toxiproxy-cli" "$dist/toxi" || fail "/toxiproxy-cli is not dist/toxi"
cmp -s "$mnt/toxi" "$dist/toxi" || fail "/toxi is not dist/toxi"
if command -v readelf >/dev/null; then
  for f in toxiproxy toxiproxy-cli; do
    if readelf -lW "$mnt/$f" | grep -q 'Requesting program interpreter' ||
      readelf -dW "$mnt/$f" | grep -q '(NEEDED)'; then
      fail "/$f in the image is dynamically linked"
    fi
  done
fi
log "image files: $(cd "$mnt" && find . -mindepth 1 \( -type f -o -type l \) | sed 's|^\.||' | sort | tr '\n' ' ')"
bh umount "$ctr" >/dev/null
mounted=0

# --- 4. run it ----------------------------------------------------------------
run_in_image() { timeout "$timeout_s" buildah --root "$work/storage" --runroot "$work/run" \
  --storage-driver vfs run --isolation chroot "$ctr" -- "$@"; }

out=$(run_in_image /toxiproxy --version 2>&1) || fail "/toxiproxy --version failed: $out"
printf '%s\n' "$out" | grep -Eq '^toxiproxy-server version [^ ]+$' ||
  fail "/toxiproxy --version printed '$out', expected 'toxiproxy-server version X'"
server_version=$(printf '%s\n' "$out" | sed -n 's/^toxiproxy-server version //p')
log "/toxiproxy --version: $out"
out=$(run_in_image /toxiproxy-cli --version 2>&1) || fail "/toxiproxy-cli --version failed: $out"
printf '%s\n' "$out" | grep -Eq '^toxiproxy-cli version [^ ]+$' ||
  fail "/toxiproxy-cli --version printed '$out', expected 'toxiproxy-cli version X'"
log "/toxiproxy-cli --version: $out"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Echo upstream on loopback: echoes every connection until EOF; writes its port
# to a file once listening; exits by itself after a bounded lifetime.
cat >"$work/echo.py" <<'PY'
import socket, sys, threading, time
deadline = time.monotonic() + float(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(16); srv.settimeout(0.5)
open(sys.argv[1] + ".tmp", "w").write(str(srv.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
def echo(c):
    c.settimeout(max(1.0, deadline - time.monotonic()))
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            c.sendall(b)
    except OSError:
        pass
    finally:
        c.close()
while time.monotonic() < deadline:
    try: c, _ = srv.accept()
    except socket.timeout: continue
    threading.Thread(target=echo, args=(c,), daemon=True).start()
PY

# Round trip through the proxy: sends N bytes, expects the same N bytes back,
# prints the elapsed seconds.
cat >"$work/roundtrip.py" <<'PY'
import os, socket, sys, time
port, size, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
data = os.urandom(size)
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
s.sendall(data)
got = b""
while len(got) < len(data):
    b = s.recv(65536)
    if not b: break
    got += b
elapsed = time.monotonic() - t0
s.close()
if got != data:
    sys.exit("round trip: sent %d bytes, got %d back%s" % (len(data), len(got), "" if len(got) != len(data) else " (different)"))
print("%.3f" % elapsed)
PY

wait_until() { # command...: poll it every 0.1 s until it succeeds, up to $timeout_s
  local deadline=$((SECONDS + timeout_s))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

setsid python3 "$work/echo.py" "$work/echo.port" $((timeout_s * 4)) >"$work/echo.log" 2>&1 &
echo_pid=$!
wait_until test -s "$work/echo.port" || fail "echo upstream did not start: $(cat "$work/echo.log")"
up_port=$(cat "$work/echo.port")

api_port=$(free_port)
log "starting /toxiproxy -host=127.0.0.1 -port=$api_port in the image"
setsid buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs \
  run --isolation chroot "$ctr" -- /toxiproxy -host=127.0.0.1 "-port=$api_port" >"$work/server.log" 2>&1 &
server_pid=$!
server_log() { echo "--- server output:" >&2; tail -n 40 "$work/server.log" >&2; }
api_up() {
  kill -0 "$server_pid" 2>/dev/null || { server_log; fail "the server exited before answering"; }
  curl -fsS -m 2 -o "$work/version.json" "http://127.0.0.1:$api_port/version" 2>/dev/null
}
wait_until api_up || { server_log; fail "GET /version did not answer within ${timeout_s}s"; }
api_version=$(python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert isinstance(v, dict) and list(v) == ["version"] and isinstance(v["version"], str) and v["version"], v
print(v["version"])' "$work/version.json") ||
  fail "GET /version body is not {\"version\": \"X\"}: $(cat "$work/version.json")"
[ "$api_version" = "$server_version" ] ||
  fail "GET /version says '$api_version' but --version says '$server_version'"
log "GET /version: $(tr -d '\n' <"$work/version.json")"

api() { # method path [json] -> prints the status code, body in $work/body
  local data=()
  [ $# -ge 3 ] && data=(-H 'Content-Type: application/json' --data "$3")
  curl -sS -m "$timeout_s" -o "$work/body" -w '%{http_code}' -X "$1" "${data[@]}" "http://127.0.0.1:$api_port$2"
}

listen_port=$(free_port)
code=$(api POST /proxies "{\"name\":\"p\",\"listen\":\"127.0.0.1:$listen_port\",\"upstream\":\"127.0.0.1:$up_port\"}") ||
  fail "POST /proxies: no answer"
[ "$code" = 201 ] || fail "POST /proxies returned $code, expected 201: $(cat "$work/body")"
python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))
want = {"name": "p", "listen": "127.0.0.1:" + sys.argv[2], "upstream": "127.0.0.1:" + sys.argv[3], "enabled": True}
bad = {k: p.get(k) for k in want if p.get(k) != want[k]}
sys.exit("proxy fields differ: %r (expected %r)" % (bad, want) if bad else 0)' \
  "$work/body" "$listen_port" "$up_port" || fail "POST /proxies body: $(cat "$work/body")"
log "POST /proxies: 201, p listens on 127.0.0.1:$listen_port -> 127.0.0.1:$up_port"

t=$(python3 "$work/roundtrip.py" "$listen_port" 100000 "$timeout_s" 2>&1) ||
  { server_log; fail "bytes through the proxy: $t"; }
log "100000 bytes through the proxy and back in ${t}s"

# The seed scenario's upstream is `localhost:9090`: resolving a name needs the
# static binary's resolver to work in the scratch image.
listen2_port=$(free_port)
code=$(api POST /proxies "{\"name\":\"q\",\"listen\":\"127.0.0.1:$listen2_port\",\"upstream\":\"localhost:$up_port\"}") ||
  fail "POST /proxies (upstream localhost): no answer"
[ "$code" = 201 ] || fail "POST /proxies with upstream localhost:$up_port returned $code: $(cat "$work/body")"
t=$(python3 "$work/roundtrip.py" "$listen2_port" 1000 "$timeout_s" 2>&1) ||
  { server_log; fail "bytes through a proxy to upstream localhost:$up_port: $t"; }
log "proxy q to upstream localhost:$up_port carries bytes (name resolution works in the image)"
code=$(api DELETE /proxies/q) || fail "DELETE /proxies/q: no answer"
[ "$code" = 204 ] || fail "DELETE /proxies/q returned $code, expected 204"

code=$(api POST /proxies/p/toxics '{"type":"latency","stream":"upstream","attributes":{"latency":300}}') ||
  fail "POST /proxies/p/toxics: no answer"
[ "$code" = 200 ] || fail "adding a latency toxic returned $code, expected 200: $(cat "$work/body")"
t=$(python3 "$work/roundtrip.py" "$listen_port" 16 "$timeout_s" 2>&1) ||
  { server_log; fail "bytes through the proxy with latency: $t"; }
python3 -c 'import sys; sys.exit(0 if 0.29 <= float(sys.argv[1]) < 10 else 1)' "$t" ||
  fail "round trip with a 300 ms upstream latency toxic took ${t}s"
log "latency toxic: round trip took ${t}s (>= 0.3 s expected)"

out=$(run_in_image /toxiproxy-cli -h "http://127.0.0.1:$api_port" list 2>&1) ||
  fail "/toxiproxy-cli list failed: $out"
printf '%s\n' "$out" | grep -q "127.0.0.1:$up_port" ||
  fail "/toxiproxy-cli list does not show proxy p: $out"
log "/toxiproxy-cli list shows p"

code=$(api DELETE /proxies/p) || fail "DELETE /proxies/p: no answer"
[ "$code" = 204 ] || fail "DELETE /proxies/p returned $code, expected 204"

stop_group "$server_pid"
server_pid=""

# --- 5. optional export --------------------------------------------------------
if [ -n "$archive" ]; then
  rm -f "$archive"
  bh push --quiet "$tag" "docker-archive:$archive:$tag" >/dev/null || fail "saving $archive failed"
  log "saved $tag to $archive"
fi

log "OK: $tag built from prebuilt static binaries and verified"
