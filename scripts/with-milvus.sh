#!/usr/bin/env bash
# Runs a command with a local Milvus endpoint: the C++ Milvus server shipped in the
# milvus-lite==2.5.1 wheel, started as a standalone process on 127.0.0.1.
#
#   scripts/with-milvus.sh CMD [ARGS...]
#
# Installs the wheel into a venv under the target directory (once), picks a free port,
# starts the server with a fresh data directory, waits for the port, exports
# MILVUS_URI=http://127.0.0.1:PORT, runs CMD, and stops the server by PID and removes its
# data on exit, whatever happens (success, failure, Ctrl-C). CMD's exit status is ours.
#
# Environment:
#   MILVUS_VENV        venv directory (default: $CARGO_TARGET_DIR or ./target, + /milvus-venv)
#   MILVUS_LITE_PIN    pip requirement (default: milvus-lite==2.5.1)
#   MILVUS_LOG_LEVEL   server log level (default: ERROR)
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${MILVUS_VENV:-$target/milvus-venv}"
pin="${MILVUS_LITE_PIN:-milvus-lite==2.5.1}"
python="${PYTHON:-python3}"

log() { echo "with-milvus: $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
    log "creating venv $venv"
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import milvus_lite' 2>/dev/null; then
    log "installing $pin"
    "$venv/bin/pip" install -q --disable-pip-version-check "$pin"
fi
lib="$("$venv/bin/python" -c 'import milvus_lite, os; print(os.path.join(os.path.dirname(milvus_lite.__file__), "lib"))')"
if [ ! -x "$lib/milvus" ]; then
    log "no server binary at $lib/milvus"
    exit 1
fi

data="$(mktemp -d "${TMPDIR:-/tmp}/quiverdb-milvus.XXXXXX")"
pid=""
child=""
cleanup() {
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free port: bind port 0, read it back, release it. Retried if another process grabs
# it before the server binds.
free_port() {
    "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
port_open() {
    "$venv/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(0 if s.connect_ex(('127.0.0.1', $1)) == 0 else 1)"
}

started=""
for attempt in 1 2 3; do
    port="$(free_port)"
    # db file name: ^[a-zA-Z0-9.\-_]+$, at most 36 characters.
    LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "$lib/milvus" "$data/it.db" "127.0.0.1:$port" "${MILVUS_LOG_LEVEL:-ERROR}" \
        >"$data/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if port_open "$port"; then
            started=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$started" ] && break
    log "attempt $attempt: server did not listen on port $port"
    tail -n 20 "$data/server.log" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
done
if [ -z "$started" ]; then
    log "could not start the Milvus endpoint"
    exit 1
fi

export MILVUS_URI="http://127.0.0.1:$port"
log "Milvus Lite 2.5.1 (pid $pid) at $MILVUS_URI"
# In the background so that a TERM/INT to this script is handled at once (bash defers
# traps until a foreground command ends): the trap exits, and cleanup stops CMD and the
# server.
"$@" &
child=$!
set +e
wait "$child"
status=$?
set -e
child=""
exit "$status"
