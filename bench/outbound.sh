#!/usr/bin/env bash
# Outbound delivery (issue 15): Portcullis's queue runner and Postfix's qmgr/smtp side by side in
# one run, each handing the same MESSAGES queued messages (SIZE_KIB each, spread over DOMAINS
# recipient domains) to a Postfix smtp-sink of its own on loopback. The domains' MX records come
# from one private dnsmasq and all point at 127.0.0.2; each server reaches its own sink through
# the port (Portcullis: [delivery] port; Postfix: a transport map "smtp:DOMAIN:PORT", which still
# looks the MX up). Both use their default delivery concurrency and connection reuse.
# docs/benchmarks.md says what was measured and how to read it.
#
#   bench/outbound.sh                                      # 2000 x 10 KiB over 5 domains, 3 rounds
#   MESSAGES=5000 DOMAINS=10 ROUNDS=5 bench/outbound.sh
#   QUEUED=100000 bench/outbound.sh                        # then the 100,000-message queue figure
#
# A round: the messages are queued with delivery stopped, then delivery is released and the time
# runs from the release to the last message the sink received (smtp-sink -M exits on it).
#   Postfix:    injected with smtp-source into its smtpd, which puts every message on hold
#               (check_client_access static:HOLD); released by `postsuper -H ALL` (to the deferred
#               queue) and `postqueue -f`. (The defer_transports way needs a `postfix reload` inside
#               the timed part, which would only add to Postfix's time.)
#   Portcullis: submitted over SMTPS (portcullis-bench) while [delivery] port points at a closed
#               port; stopped; `portcullis queue flush`; released by starting it with [delivery]
#               port on its sink. Its start-up (store open, listeners) is inside its time.
# After a warm-up round, rounds alternate the order; the ratio is that of the median rates.
#
# QUEUED=N (0: skipped): Portcullis stopped, N messages written into its queue (QUEUED_KIB each,
# not due for a day, as a long deferred or held backlog is), then started: its RSS, its CPU time
# over IDLE_SECONDS, the store's size, and the claims the runner made (none are due: it must not
# read the backlog). Then every one made due towards a closed port: the runner's RSS stays bounded
# (it claims at most 2000 at a time) while it works through them.
#
# Needs root on Debian with postfix (smtp-sink, smtp-source) and dnsmasq. Everything it creates
# lives in one temp dir under RUN_BASE, removed at the end with every process it started.
set -euo pipefail

MESSAGES=${MESSAGES:-2000}   # per round, over all domains
DOMAINS=${DOMAINS:-5}
SIZE_KIB=${SIZE_KIB:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
QUEUED=${QUEUED:-0}
QUEUED_KIB=${QUEUED_KIB:-4}
IDLE_SECONDS=${IDLE_SECONDS:-30}
PC_SUBMIT_PORT=${PC_SUBMIT_PORT:-24465}
PF_SMTPD_PORT=${PF_SMTPD_PORT:-24027}
PC_SINK_PORT=${PC_SINK_PORT:-24031}
PF_SINK_PORT=${PF_SINK_PORT:-24032}
CLOSED_PORT=${CLOSED_PORT:-24039}
DNS_ADDR=127.0.0.154
# Postfix's own address (it must be an interface's), and the sinks': another, or Postfix would see
# its exchangers as itself ("mail loops back to myself").
PF_ADDR=127.0.0.1
SINK_ADDR=127.0.0.2
KEEP=${KEEP:-0}
RUN_BASE=${RUN_BASE:-/var/tmp}

cd "$(dirname "$0")/.."
REPO=$PWD
HOSTNAME_=mail.bench.test
DOMAIN=bench.test
USER_=bench@bench.test
PASSWORD=plinth-orbit-cactus-9

. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix, smtp-sink and dnsmasq are started as private instances)"
for tool in postfix smtp-source smtp-sink dnsmasq unshare python3; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install postfix dnsmasq python3"
done
for port in "$PC_SUBMIT_PORT" "$PF_SMTPD_PORT" "$PC_SINK_PORT" "$PF_SINK_PORT" "$CLOSED_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use"; fi
done
if ss -Hlun "src = $DNS_ADDR" | grep -q ":53 "; then die "$DNS_ADDR:53 is in use"; fi
[ $((MESSAGES % DOMAINS)) -eq 0 ] || die "MESSAGES ($MESSAGES) must be a multiple of DOMAINS ($DOMAINS)"
PER_DOMAIN=$((MESSAGES / DOMAINS))

say "building (release)"
cargo build --release -j2 -q -p portcullis -p portcullis-bench
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
BENCH=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-bench

RUN=$(mktemp -d "$RUN_BASE/portcullis-outbound-bench.XXXXXX")
chmod 755 "$RUN"
PORTCULLIS_PID=
SINK_PID=
DNS_PID=
NS_PID=
POSTFIX_ETC=$RUN/postfix/etc

cleanup() {
    set +e
    stop_portcullis
    [ -n "$SINK_PID" ] && kill -TERM "$SINK_PID" 2>/dev/null
    stop_keeper
    stop_dnsmasq
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- DNS: the recipient domains' MX records, for both servers ---------------------------------
say "starting dnsmasq on $DNS_ADDR:53"
# (Not a pipe into start_dnsmasq: that would run it in a subshell, and DNS_PID would be lost.)
start_dnsmasq "$DNS_ADDR" < <(
    echo "host-record=mx.sink.bench,$SINK_ADDR"
    for d in $(seq "$DOMAINS"); do echo "mx-host=d$d.sink.bench,mx.sink.bench,10"; done
)

# --- Portcullis ------------------------------------------------------------------------------
make_leaf_cert "$RUN/tls" "$HOSTNAME_"
PC=$RUN/portcullis
mkdir -p "$PC"
# portcullis_conf PORT: the config, delivering to exchangers on PORT.
portcullis_conf() {
    cat >"$PC/portcullis.toml" <<EOF
hostname = "$HOSTNAME_"
data_dir = "data"
[tls]
cert = "$RUN/tls/cert.pem"
key = "$RUN/tls/key.pem"
[listen]
submissions = ["127.0.0.1:$PC_SUBMIT_PORT"]
[limits]
max_connections_per_ip = 30
max_commands = 1000000
[guard]
# The injection sends far more than a person would (see bench/submission.sh).
max_messages_per_hour = 10000000
max_recipients_per_hour = 10000000
unknown_source_attempts = 30
ban_after_attempts = 30
[dns]
servers = ["$DNS_ADDR:53"]
[delivery]
port = $1
[process]
user = "nobody"
shutdown_grace = "5s"
[log]
format = "json"
EOF
}
portcullis_conf "$CLOSED_PORT"
pc_add_user "$DOMAIN" "$USER_" "$PASSWORD"
DB=$PC/data/mail.db
pc_queued() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM queue").fetchone()[0])' "$DB"; }
pc_empty_queue() { python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("DELETE FROM queue_recipients"); c.execute("DELETE FROM queue"); c.commit()' "$DB"; }

# --- Postfix: a private instance, smtpd on $PF_ADDR for the injection ------------------------
say "starting Postfix on $PF_ADDR:$PF_SMTPD_PORT"
postfix_dirs
for d in $(seq "$DOMAINS"); do echo "d$d.sink.bench smtp:d$d.sink.bench:$PF_SINK_PORT"; done >"$POSTFIX_ETC/transport"
{ postfix_main_base "$HOSTNAME_" "$DOMAIN" "$PF_ADDR"; cat; } >"$POSTFIX_ETC/main.cf" <<EOF
smtpd_peername_lookup = no
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
# The exchangers are found by MX lookup; the transport map only says which port.
transport_maps = texthash:$POSTFIX_ETC/transport
# Every message injected goes on hold: delivery stays stopped until the round releases it.
smtpd_client_restrictions = check_client_access static:HOLD
EOF
cat >"$POSTFIX_ETC/master.cf" <<EOF
$PF_ADDR:$PF_SMTPD_PORT inet n - n - - smtpd
$(postfix_services)
EOF
postfix -c "$POSTFIX_ETC" check >/dev/null 2>&1 || die "postfix check failed for $POSTFIX_ETC"
# The keeper starts Postfix in the namespace with our resolv.conf (its smtp client reads it).
start_keeper "" ""
wait_keeper_postfix "$PF_SMTPD_PORT"
pf_queue() { find "$RUN/postfix/spool/$1" -type f | wc -l; }

# --- A round's steps ---------------------------------------------------------------------------
mkdir -p "$RUN/results"
# start_sink PORT: a sink that exits when it has received the round's messages.
start_sink() {
    smtp-sink -u nobody -M "$MESSAGES" "$SINK_ADDR:$1" 256 >/dev/null 2>"$RUN/sink.err" &
    SINK_PID=$!
    for _ in $(seq 100); do ss -Hltn "sport = :$1" | grep -q . && return; sleep 0.05; done
    die "smtp-sink did not start on $1: $(cat "$RUN/sink.err")"
}
# wait_sink NAME: waits for the sink's exit, or gives up after 600 s; writes the seconds since
# $released to $RUN/results/NAME.$round.
wait_sink() {
    local started=$SECONDS
    while kill -0 "$SINK_PID" 2>/dev/null; do
        if [ $((SECONDS - started)) -ge 600 ]; then
            kill -TERM "$SINK_PID"
            die "$1 delivered only part of the round's $MESSAGES messages in 600 s"
        fi
        sleep 0.01
    done
    local end=$EPOCHREALTIME
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=
    echo "$released $end" | awk '{ printf "%.4f\n", $2 - $1 }' >"$RUN/results/$1.$round"
}

queue_postfix() {
    local d
    for d in $(seq "$DOMAINS"); do
        smtp-source -s 4 -m "$PER_DOMAIN" -l $((SIZE_KIB * 1024)) -f "$USER_" -t "rcpt@d$d.sink.bench" \
            "$PF_ADDR:$PF_SMTPD_PORT" 2>>"$RUN/results/postfix.inject.err"
    done
    local started=$SECONDS
    # Queued and set aside: every message on hold, none still in flight.
    while [ "$(pf_queue hold)" -lt "$MESSAGES" ] || [ "$(pf_queue active)" -gt 0 ] || [ "$(pf_queue incoming)" -gt 0 ]; do
        [ $((SECONDS - started)) -lt 300 ] || die "Postfix held only $(pf_queue hold) of $MESSAGES"
        sleep 0.1
    done
}

round_postfix() {
    queue_postfix
    start_sink "$PF_SINK_PORT"
    released=$EPOCHREALTIME
    postsuper -c "$POSTFIX_ETC" -H ALL 2>/dev/null
    postqueue -c "$POSTFIX_ETC" -f
    wait_sink postfix
    local started=$SECONDS
    while [ "$(pf_queue active)" -gt 0 ] || [ "$(pf_queue deferred)" -gt 0 ]; do
        # The sink exits on the last message, maybe before it answered: what stays is removed,
        # so that no round delivers another's.
        [ $((SECONDS - started)) -lt 10 ] || { say "note: $(pf_queue deferred) left in Postfix's queue"; break; }
        sleep 0.1
    done
    postsuper -c "$POSTFIX_ETC" -d ALL >/dev/null 2>&1 || true
}

queue_portcullis() {
    portcullis_conf "$CLOSED_PORT"
    start_portcullis "$PC_SUBMIT_PORT"
    local d
    for d in $(seq "$DOMAINS"); do
        BENCH_PASSWORD=$PASSWORD "$BENCH" --server "127.0.0.1:$PC_SUBMIT_PORT" --tls-name "$HOSTNAME_" \
            --ca "$RUN/tls/cert.pem" --user "$USER_" --to "rcpt@d$d.sink.bench" --clients 4 \
            --messages $((PER_DOMAIN / 4)) --size-kib "$SIZE_KIB" --json >>"$RUN/results/portcullis.inject.json" 2>>"$RUN/results/portcullis.inject.err" ||
            die "the submission to Portcullis failed: $(tail -c 600 "$RUN/results/portcullis.inject.json") $(tail -3 "$RUN/results/portcullis.inject.err" 2>/dev/null)"
    done
    stop_portcullis
    [ "$(pc_queued)" -eq "$MESSAGES" ] || die "Portcullis queued $(pc_queued) of $MESSAGES"
    pc queue flush >/dev/null
}

round_portcullis() {
    queue_portcullis
    portcullis_conf "$PC_SINK_PORT"
    start_sink "$PC_SINK_PORT"
    released=$EPOCHREALTIME
    launch_portcullis
    wait_sink portcullis
    local started=$SECONDS
    while [ "$(pc_queued)" -gt 0 ]; do
        # The sink exits on the last message, maybe before it answered: what stays is removed,
        # so that no round delivers another's.
        [ $((SECONDS - started)) -lt 10 ] || { say "note: $(pc_queued) left in Portcullis's queue"; break; }
        sleep 0.1
    done
    stop_portcullis
    pc_empty_queue
}

[ $((PER_DOMAIN % 4)) -eq 0 ] || die "MESSAGES / DOMAINS must be a multiple of 4 (4 injecting clients)"
say "load: $MESSAGES messages x $SIZE_KIB KiB over $DOMAINS domains a round, $ROUNDS rounds, on $(nproc) cores"
say "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
FIRST=1
[ "$WARMUP" = 1 ] && FIRST=0
for round in $(seq "$FIRST" "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="portcullis postfix"; else order="postfix portcullis"; fi
    for side in $order; do
        say "round $round: $side"
        "round_$side"
        sync
    done
done
PF_SENT=$(grep -c 'status=sent' "$RUN/postfix/maillog" || true)

python3 - "$RUN/results" "$FIRST" "$ROUNDS" "$MESSAGES" <<'EOF'
import statistics, sys
results, first, rounds, messages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sides = ("portcullis", "postfix")
secs = {s: [float(open(f"{results}/{s}.{r}").read()) for r in range(first, rounds + 1)] for s in sides}
row = "{:<8} {:<11} {:>9} {:>9}"
print(row.format("round", "server", "seconds", "msgs/s"))
for i, r in enumerate(range(first, rounds + 1)):
    for s in sides:
        print(row.format(r or "warm-up", s, f"{secs[s][i]:.2f}", f"{messages / secs[s][i]:.1f}"))
measured = {s: secs[s][1 - first:] for s in sides}
rate = {s: statistics.median(messages / t for t in measured[s]) for s in sides}
print()
for s in sides:
    print(row.format("median", s, "", f"{rate[s]:.1f}"))
ratios = [b / a for a, b in zip(measured["portcullis"], measured["postfix"])]
print(f"\nratio Portcullis/Postfix: {rate['portcullis'] / rate['postfix']:.2f}x of the medians"
      f" (per round: {', '.join(f'{q:.2f}x' for q in ratios)}); target at least 2x")
EOF
echo "Postfix deliveries logged (status=sent): $PF_SENT"
echo "Portcullis delivery_attempt events: $(grep -c '"event":"delivery_attempt"' "$PC/log.jsonl") (one per message and domain, the injection's deferrals included)"

[ "$QUEUED" -gt 0 ] || exit 0

# --- The long queue: RSS, store size, claims ---------------------------------------------------
say "writing $QUEUED queued messages of $QUEUED_KIB KiB into Portcullis's queue (not due for a day)"
stop_portcullis
pc_empty_queue
python3 - "$DB" "$QUEUED" "$QUEUED_KIB" <<'EOF'
import sqlite3, sys, time
db, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
now = int(time.time())
body = b"Subject: queued\r\n\r\n" + (b"x" * 76 + b"\r\n") * (kib * 1024 // 78)
for i in range(n):
    cur = c.execute(
        "INSERT INTO queue(sender, smtputf8, eight_bit, content, queued_at, next_attempt) VALUES (?, 0, 0, ?, ?, ?)",
        ("bench@bench.test", body, now, now + 86400))
    c.execute("INSERT INTO queue_recipients(queue_id, position, address) VALUES (?, 0, ?)",
              (cur.lastrowid, f"r{i}@d{i % 5 + 1}.sink.bench"))
c.commit()
EOF
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$PORTCULLIS_PID/status"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$PORTCULLIS_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PORTCULLIS_PID/stat"; }
portcullis_conf "$CLOSED_PORT"
before_attempts=$(grep -c '"event":"delivery_attempt"' "$PC/log.jsonl" || true)
start_portcullis "$PC_SUBMIT_PORT"
sleep 2
ticks0=$(cpu_ticks)
sleep "$IDLE_SECONDS"
ticks1=$(cpu_ticks)
echo
echo "queued: $(pc_queued) messages x $QUEUED_KIB KiB, none due"
echo "store: $(du -sh "$PC/data" | cut -f1) (data dir: mail.db with its WAL)"
echo "Portcullis RSS: $(($(rss_kib) / 1024)) MiB (peak $(($(hwm_kib) / 1024)) MiB)"
echo "CPU over $IDLE_SECONDS s idle: $(( (ticks1 - ticks0) * 1000 / $(getconf CLK_TCK) )) ms"
echo "delivery attempts meanwhile: $(( $(grep -c '"event":"delivery_attempt"' "$PC/log.jsonl" || true) - before_attempts ))"

say "making all $QUEUED due, towards a closed port: the runner works through them in bounded claims"
stop_portcullis
pc queue flush >/dev/null
start_portcullis "$PC_SUBMIT_PORT"
peak=0
for _ in $(seq "$IDLE_SECONDS"); do
    r=$(rss_kib)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 1
done
echo "after ${IDLE_SECONDS}s with all due: RSS $(($(rss_kib) / 1024)) MiB, peak sampled $((peak / 1024)) MiB, peak (VmHWM) $(($(hwm_kib) / 1024)) MiB"
echo "still queued: $(pc_queued); attempts recorded in the queue: $(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM queue WHERE attempts > 0").fetchone()[0])' "$DB")"
stop_portcullis
