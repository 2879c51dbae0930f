#!/usr/bin/env bash
# Soak: a bounded mixed load on every protocol at once (SMTP submission, IMAP with IDLE, POP3)
# for DURATION seconds, with the server's memory (VmRSS) and open file descriptors sampled from
# /proc before the load, every INTERVAL seconds, and after it. docs/benchmarks.md ("Soak") says how
# to read it; the goal is no growth.
#
#   bench/soak.sh                          # 10 minutes, samples every 30 s
#   DURATION=60 INTERVAL=10 bench/soak.sh  # a quick look
#
# The load is a steady state (crates/bench, portcullis-soak): what SMTP delivers, POP3 and IMAP
# clients read and delete. Afterwards the script stops the server, runs `portcullis store
# check`, and fails if the load saw errors, the log shows a panic or an internal error, or the
# store has problems.
# Everything lives in one temp dir under RUN_BASE (/tmp), removed at the end with the server.
# As root the server drops to nobody (as in production); as any other user it runs as that user.
set -euo pipefail

DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-30}
SETTLE=${SETTLE:-15}
SMTP_CLIENTS=${SMTP_CLIENTS:-4}
RATE=${RATE:-10}               # messages per second per SMTP client
SIZE_KIB=${SIZE_KIB:-8}
IMAP_CLIENTS=${IMAP_CLIENTS:-4}
POP3_CLIENTS=${POP3_CLIENTS:-2}
IDLE_CLIENTS=${IDLE_CLIENTS:-8}
SUBMISSIONS_PORT=${SUBMISSIONS_PORT:-25465}
IMAPS_PORT=${IMAPS_PORT:-25993}
POP3S_PORT=${POP3S_PORT:-25995}
KEEP=${KEEP:-0}                # 1: leave the temp dir (log, store) for inspection
RUN_BASE=${RUN_BASE:-/tmp}

cd "$(dirname "$0")/.."
REPO=$PWD
HOSTNAME_=mail.soak.test
DOMAIN=soak.test
PASSWORD=plinth-orbit-cactus-9

# say, die, refuse_tmpfs, make_leaf_cert, keep_or_remove
. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"

for port in "$SUBMISSIONS_PORT" "$IMAPS_PORT" "$POP3S_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set SUBMISSIONS_PORT / IMAPS_PORT / POP3S_PORT"; fi
done

# --- Build ----------------------------------------------------------------------------------
say "building (release)"
cargo build --release -j2 -q -p portcullis -p portcullis-bench --bin portcullis --bin portcullis-soak
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
SOAK=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-soak

# --- Temp dir and cleanup -------------------------------------------------------------------
RUN=$(mktemp -d "$RUN_BASE/portcullis-soak.XXXXXX")
chmod 755 "$RUN"   # the server (nobody, when started as root) must be able to walk into it
PID=

cleanup() {
    set +e
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" 2>/dev/null
    fi
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_leaf_cert "$RUN/tls" "$HOSTNAME_"
USER_LINE=
if [ "$(id -u)" -eq 0 ]; then
    USER_LINE='user = "nobody"'
fi

# --- Portcullis -----------------------------------------------------------------------------
cat >"$RUN/portcullis.toml" <<EOF
hostname = "$HOSTNAME_"
data_dir = "data"
[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
[listen]
submissions = ["127.0.0.1:$SUBMISSIONS_PORT"]
imaps = ["127.0.0.1:$IMAPS_PORT"]
pop3s = ["127.0.0.1:$POP3S_PORT"]
[limits]
# Every client comes from 127.0.0.1; reconnections overlap the closing of the last session.
max_connections_per_ip = 200
[guard]
# The SMTP clients send far more than a person would; the sending limits would stop them.
max_messages_per_hour = 1000000
max_recipients_per_hour = 1000000
[process]
$USER_LINE
shutdown_grace = "5s"
[log]
format = "json"
EOF
# The default limits, timeouts and argon2 settings apply otherwise.
pc() { "$BIN" --config "$RUN/portcullis.toml" "$@"; }
pc domain add "$DOMAIN" >/dev/null
for kind_count in "smtp:$SMTP_CLIENTS" "imap:$IMAP_CLIENTS" "pop:$POP3_CLIENTS"; do
    kind=${kind_count%%:*}
    for n in $(seq 1 "${kind_count##*:}"); do
        echo "$PASSWORD" | pc account add "$(printf '%s%02d@%s' "$kind" "$n" "$DOMAIN")" --password-stdin >/dev/null
    done
done
"$BIN" --config "$RUN/portcullis.toml" serve >"$RUN/log.jsonl" 2>"$RUN/stderr" &
PID=$!
for _ in $(seq 300); do
    [ "$(grep -c '"event":"listening"' "$RUN/log.jsonl" 2>/dev/null || true)" -ge 3 ] && break
    kill -0 "$PID" 2>/dev/null || die "Portcullis exited: $(cat "$RUN/stderr")"
    sleep 0.1
done
[ "$(grep -c '"event":"listening"' "$RUN/log.jsonl")" -ge 3 ] || die "Portcullis did not start listening"
say "Portcullis $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') (pid $PID) on 127.0.0.1:$SUBMISSIONS_PORT/$IMAPS_PORT/$POP3S_PORT; load for $DURATION s"

# --- The load -------------------------------------------------------------------------------
STATUS=0
BENCH_PASSWORD=$PASSWORD "$SOAK" \
    --submissions "127.0.0.1:$SUBMISSIONS_PORT" --imaps "127.0.0.1:$IMAPS_PORT" --pop3s "127.0.0.1:$POP3S_PORT" \
    --ca "$RUN/tls/cert.pem" --tls-name "$HOSTNAME_" --domain "$DOMAIN" \
    --smtp-clients "$SMTP_CLIENTS" --rate "$RATE" --size-kib "$SIZE_KIB" \
    --imap-clients "$IMAP_CLIENTS" --pop3-clients "$POP3_CLIENTS" --idle-clients "$IDLE_CLIENTS" \
    --duration "$DURATION" --interval "$INTERVAL" --settle "$SETTLE" --pid "$PID" || STATUS=1

# --- Afterwards -----------------------------------------------------------------------------
kill -TERM "$PID"
wait "$PID" || { echo "Portcullis exited with status $?" >&2; STATUS=1; }
PID=
if grep -qi panic "$RUN/stderr" "$RUN/log.jsonl"; then
    echo "a panic in the server's output:" >&2
    grep -hi panic "$RUN/stderr" "$RUN/log.jsonl" | head -5 >&2
    STATUS=1
fi
INTERNAL=$(grep -c '"event":"internal_error"' "$RUN/log.jsonl" || true)
if [ "$INTERNAL" -gt 0 ]; then
    echo "$INTERNAL internal errors in the log, e.g.:" >&2
    grep '"event":"internal_error"' "$RUN/log.jsonl" | head -3 >&2
    STATUS=1
fi
echo
echo "log: $(wc -l <"$RUN/log.jsonl") lines, $(grep -c '"event":"connection_opened"' "$RUN/log.jsonl" || true) connections, $(grep -c '"event":"message_accepted"' "$RUN/log.jsonl" || true) messages accepted, $INTERNAL internal errors"
echo "store: $(du -sh "$RUN/data" | cut -f1) in the data dir"
pc store check || STATUS=1
exit "$STATUS"
