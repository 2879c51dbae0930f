#!/usr/bin/env bash
# PostgreSQL against SQLite, and three nodes against one (issue 17), side by side in one run:
#   sqlite  one Portcullis node on SQLite;
#   pg1     one node on PostgreSQL (database `single` of a private cluster);
#   pg3     three nodes on one PostgreSQL database (`multi`, same cluster) behind a private
#           HAProxy in TCP mode, every connection opening with a PROXY v2 header ([proxy]).
# Loads, each measured ROUNDS times with the order of the setups rotating from round to round:
#   submission  the crates/bench harness as bench/submission.sh drives it (CLIENTS x MESSAGES
#               x SIZE_KIB, each message fsynced before its 250), every message to the sender;
#   spread      the same, each client sending to a recipient of its own (rcpt01, rcpt02, ...),
#               as mail to many people arrives;
#   mix, mixk   the IMAP mix as bench/imap.sh runs it (MIX_CLIENTS clients for DURATION s; mixk
#               with MIX_CYCLES rounds of SELECT/FETCH/STORE per LOGIN);
#   idle        pg3 only: an IDLE session on node 2, APPENDs on node 1, time from the APPEND's
#               OK to `* n EXISTS` (IDLE_COUNT samples); pg1 and sqlite within one node, for
#               reference.
# During each load, the CPU seconds of every Portcullis process, of the whole PostgreSQL process
# tree and of HAProxy (/proc/PID/stat). docs/benchmarks.md ("PostgreSQL and several nodes")
# says how to read the result: this machine has 2 cores, so three nodes here share them with
# PostgreSQL and the load generator; the CPU per message is what carries over, not the rate.
#
#   bench/postgres.sh                                 # the defaults below
#   ROUNDS=1 MESSAGES=50 DURATION=5 MIX_SIZE=50 IDLE_COUNT=20 bench/postgres.sh   # a quick try
#
# PostgreSQL runs with fsync, synchronous_commit and full_page_writes on (its defaults) and
# only what an admin of a dedicated mail database would set: PG_SHARED_BUFFERS, an
# effective_cache_size to match, and max_connections for the nodes' pools. PG_STATS=1 adds
# pg_stat_statements and prints the statements that took the most time.
# Needs root on Debian with postgresql and haproxy installed. Everything it creates lives in
# one temp dir under RUN_BASE, removed at the end with every process it started.
set -euo pipefail

CLIENTS=${CLIENTS:-8}
MESSAGES=${MESSAGES:-200}
SIZE_KIB=${SIZE_KIB:-10}
ROUNDS=${ROUNDS:-3}
# An unmeasured first submission round on each setup: a fresh store grows its files (SQLite's
# WAL, PostgreSQL's tables and indexes) during its first messages; a server in service has
# long done that.
WARMUP=${WARMUP:-1}
MIX_CLIENTS=${MIX_CLIENTS:-16}
DURATION=${DURATION:-15}       # seconds per mix measurement
MIX_SIZE=${MIX_SIZE:-200}      # messages in each mix account's INBOX
MIX_CYCLES=${MIX_CYCLES:-50}   # "" skips the mix with several rounds per login
IDLE_COUNT=${IDLE_COUNT:-100}
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-1GB}
PG_STATS=${PG_STATS:-0}
PG_SOCKET=${PG_SOCKET:-0}
BASE_PORT=${BASE_PORT:-25000}  # every port of the run is BASE_PORT + a small offset
KEEP=${KEEP:-0}                # 1: leave the temp dir for inspection (processes are stopped all the same)
RUN_BASE=${RUN_BASE:-/tmp}     # where the run dir (every store) goes; one filesystem for all

cd "$(dirname "$0")/.."
REPO=$PWD
HOSTNAME_=mail.bench.test
DOMAIN=bench.test
USER_=bench@$DOMAIN
IDLE_USER=idle@$DOMAIN
PASSWORD=plinth-orbit-cactus-9
SEED_SMALL=2
SETUPS=(sqlite pg1 pg3)
NODES=3

# Ports: each node's own listeners, then HAProxy's frontends.
PG_PORT=$((BASE_PORT + 1))
declare -A SUB_PORT=([sqlite]=$((BASE_PORT + 10)) [pg1]=$((BASE_PORT + 11)) [n1]=$((BASE_PORT + 21)) [n2]=$((BASE_PORT + 22)) [n3]=$((BASE_PORT + 23)))
declare -A IMAP_PORT=([sqlite]=$((BASE_PORT + 30)) [pg1]=$((BASE_PORT + 31)) [n1]=$((BASE_PORT + 41)) [n2]=$((BASE_PORT + 42)) [n3]=$((BASE_PORT + 43)))
LB_SUB_PORT=$((BASE_PORT + 50))
LB_IMAP_PORT=$((BASE_PORT + 51))
LB_IMAP_NODE_PORT=$((BASE_PORT + 52))   # + n - 1: node n alone, for the IDLE measurement
# Where the load of each setup goes.
declare -A SETUP_SUB=([sqlite]=${SUB_PORT[sqlite]} [pg1]=${SUB_PORT[pg1]} [pg3]=$LB_SUB_PORT)
declare -A SETUP_IMAP=([sqlite]=${IMAP_PORT[sqlite]} [pg1]=${IMAP_PORT[pg1]} [pg3]=$LB_IMAP_PORT)

# say, die, refuse_tmpfs, make_leaf_cert, keep_or_remove, pc, start_portcullis, stop_portcullis,
# wait_listening, json_field, tree_cpu_ticks
. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"

[ "$(id -u)" -eq 0 ] || die "run as root (PostgreSQL runs as nobody through setpriv, the nodes drop to nobody)"
[ "$MIX_CLIENTS" -le 99 ] && [ "$CLIENTS" -le 99 ] || die "CLIENTS and MIX_CLIENTS must be at most 99"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/postgres" ] || die "PostgreSQL is not installed (apt-get install postgresql)"
command -v haproxy >/dev/null || die "HAProxy is not installed (apt-get install haproxy)"
for port in "$PG_PORT" "${SUB_PORT[@]}" "${IMAP_PORT[@]}" "$LB_SUB_PORT" "$LB_IMAP_PORT" \
    $(seq "$LB_IMAP_NODE_PORT" $((LB_IMAP_NODE_PORT + NODES - 1))); do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set BASE_PORT"; fi
done

# --- Build ----------------------------------------------------------------------------------
say "building (release)"
cargo build --release -j2 -q -p portcullis -p portcullis-bench
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
SMTP_BENCH=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-bench
IMAP_BENCH=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-imap-bench

# --- Temp dir and cleanup -------------------------------------------------------------------
RUN=$(mktemp -d "$RUN_BASE/portcullis-pg-bench.XXXXXX")
# The servers run as nobody, who must be able to walk into it.
chmod 755 "$RUN"
declare -A NODE_PID=()
PG_PID=
LB_PID=

cleanup() {
    set +e
    local name
    for name in "${!NODE_PID[@]}"; do
        PC=$RUN/$name PORTCULLIS_PID=${NODE_PID[$name]}
        stop_portcullis
    done
    if [ -n "$LB_PID" ]; then kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null; fi
    if [ -n "$PG_PID" ]; then
        # Fast shutdown: the backends end, the postmaster writes a last checkpoint and exits.
        kill -INT "$PG_PID" 2>/dev/null
        for _ in $(seq 300); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_leaf_cert "$RUN/tls" "$HOSTNAME_"
say "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "Portcullis $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), $("$PGBIN/postgres" --version), $(haproxy -v | head -1 | cut -d' ' -f1-3)"

# --- PostgreSQL: a private cluster, run as nobody ---------------------------------------------
as_nobody() { setpriv --reuid "$(id -u nobody)" --regid "$(getent group nogroup | cut -d: -f3)" --clear-groups -- "$@"; }
PGDIR=$RUN/pg
mkdir -p "$PGDIR"
chown nobody:nogroup "$PGDIR"
say "starting PostgreSQL on 127.0.0.1:$PG_PORT (shared_buffers $PG_SHARED_BUFFERS)"
(cd "$PGDIR" && as_nobody "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C) >"$PGDIR/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -5 "$PGDIR/initdb.log")"
PG_SETTINGS=(
    -c listen_addresses=127.0.0.1 -c "port=$PG_PORT" -c "unix_socket_directories=$PGDIR"
    # What the admin of a dedicated mail database sets (the rest, fsync and synchronous_commit
    # among them, stays at PostgreSQL's defaults): a larger buffer cache, the planner told how
    # much the OS caches, and room for every node's connection pool and LISTEN connection.
    -c "shared_buffers=$PG_SHARED_BUFFERS" -c effective_cache_size=4GB -c max_connections=200
)
[ "$PG_STATS" = 1 ] && PG_SETTINGS+=(-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all)
# exec: $! is the postmaster itself, the root of the tree whose CPU is counted.
(cd "$PGDIR" && exec setpriv --reuid "$(id -u nobody)" --regid "$(getent group nogroup | cut -d: -f3)" --clear-groups -- \
    "$PGBIN/postgres" -D "$PGDIR/data" "${PG_SETTINGS[@]}") >"$PGDIR/postgres.log" 2>&1 &
PG_PID=$!
for _ in $(seq 300); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    kill -0 "$PG_PID" 2>/dev/null || die "PostgreSQL exited: $(tail -5 "$PGDIR/postgres.log")"
    sleep 0.1
done
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || die "PostgreSQL does not accept connections"
psql_() { "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
for db in single multi; do "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"; done
[ "$PG_STATS" = 1 ] && psql_ -d single -c "CREATE EXTENSION pg_stat_statements" && psql_ -d multi -c "CREATE EXTENSION pg_stat_statements"
# PG_SOCKET=1: the nodes reach PostgreSQL through its Unix socket, as a node on the database's
# own machine would (Debian's default); otherwise over TCP on the loopback.
if [ "$PG_SOCKET" = 1 ]; then
    pg_url() { echo "postgres://postgres@$(printf %s "$PGDIR" | sed 's|/|%2F|g'):$PG_PORT/$1?sslmode=disable"; }
else
    pg_url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$1?sslmode=disable"; }
fi

# --- Portcullis nodes -----------------------------------------------------------------------
# node_conf NAME STORE_URL PROXY: RUN/NAME/portcullis.toml, submissions and imaps on the node's
# ports; PROXY=1 puts both behind the PROXY protocol, trusting the loopback balancer only.
node_conf() {
    local name=$1 url=$2 proxy=$3
    mkdir -p "$RUN/$name"
    cat >"$RUN/$name/portcullis.toml" <<EOF
hostname = "$HOSTNAME_"
data_dir = "data"
[store]
url = "$url"
[tls]
cert = "$RUN/tls/cert.pem"
key = "$RUN/tls/key.pem"
[listen]
submissions = ["127.0.0.1:${SUB_PORT[$name]}"]
imaps = ["127.0.0.1:${IMAP_PORT[$name]}"]
[limits]
# Room for the load itself: the defaults (20 per IP, 10000 commands) would cap it.
max_connections_per_ip = $((CLIENTS + MIX_CLIENTS + 20))
max_commands = $((MESSAGES * 4 + 100))
[guard]
# The load sends far more than a person would, and all its clients log in at once from one
# address (bench/submission.sh says why each limit is lifted): the benchmark measures the
# store, not those defences.
max_messages_per_hour = 1000000
max_recipients_per_hour = 1000000
unknown_source_attempts = $((CLIENTS + MIX_CLIENTS + 10))
ban_after_attempts = $((CLIENTS + MIX_CLIENTS + 10))
[process]
user = "nobody"
shutdown_grace = "5s"
[log]
format = "json"
EOF
    if [ "$proxy" = 1 ]; then
        cat >>"$RUN/$name/portcullis.toml" <<EOF
[proxy]
listeners = ["submissions", "imaps"]
trusted_proxies = ["127.0.0.1/32"]
EOF
    fi
}

node_conf sqlite "sqlite:data/mail.db" 0
node_conf pg1 "$(pg_url single)" 0
for n in $(seq 1 "$NODES"); do node_conf "n$n" "$(pg_url multi)" 1; done

# Accounts, once per store (the three nodes share theirs): the submission account, the mix
# accounts and the IDLE account, default argon2 settings.
MIX_USERS=()
for n in $(seq 1 "$MIX_CLIENTS"); do MIX_USERS+=("$(printf 'mix%02d@%s' "$n" "$DOMAIN")"); done
RCPT_USERS=()
for n in $(seq 1 "$CLIENTS"); do RCPT_USERS+=("$(printf 'rcpt%02d@%s' "$n" "$DOMAIN")"); done
for name in sqlite pg1 n1; do
    PC=$RUN/$name
    pc domain add "$DOMAIN" >/dev/null
    for user in "$USER_" "$IDLE_USER" "${MIX_USERS[@]}" "${RCPT_USERS[@]}"; do
        echo "$PASSWORD" | pc account add "$user" --password-stdin --quota unlimited >/dev/null
    done
done

for name in sqlite pg1 $(seq -f 'n%g' 1 "$NODES"); do
    PC=$RUN/$name
    say "starting node $name (submissions ${SUB_PORT[$name]}, imaps ${IMAP_PORT[$name]})"
    start_portcullis "${SUB_PORT[$name]}"
    NODE_PID[$name]=$PORTCULLIS_PID
    wait_listening "${IMAP_PORT[$name]}" "node $name" "$PORTCULLIS_PID"
done

# --- HAProxy: TCP mode, PROXY v2 to the nodes, as dist/haproxy.cfg minus the health checks ---
# (the nodes' admin listeners are off here) and minus chroot/user (a private instance).
{
    cat <<EOF
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 5s
    timeout client 31m
    timeout server 31m
    balance leastconn
frontend submissions
    bind 127.0.0.1:$LB_SUB_PORT
    default_backend mail_submissions
frontend imaps
    bind 127.0.0.1:$LB_IMAP_PORT
    default_backend mail_imaps
backend mail_submissions
$(for n in $(seq 1 "$NODES"); do echo "    server node$n 127.0.0.1:${SUB_PORT[n$n]} send-proxy-v2"; done)
backend mail_imaps
$(for n in $(seq 1 "$NODES"); do echo "    server node$n 127.0.0.1:${IMAP_PORT[n$n]} send-proxy-v2"; done)
EOF
    # One frontend per node, so that the IDLE measurement can pick the node of each client.
    for n in $(seq 1 "$NODES"); do
        cat <<EOF
frontend imaps_node$n
    bind 127.0.0.1:$((LB_IMAP_NODE_PORT + n - 1))
    default_backend imaps_node$n
backend imaps_node$n
    server node$n 127.0.0.1:${IMAP_PORT[n$n]} send-proxy-v2
EOF
    done
} >"$RUN/haproxy.cfg"
haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy -c failed for $RUN/haproxy.cfg"
haproxy -db -f "$RUN/haproxy.cfg" >"$RUN/haproxy.log" 2>&1 &
LB_PID=$!
wait_listening "$LB_IMAP_PORT" HAProxy "$LB_PID"
wait_listening "$LB_SUB_PORT" HAProxy "$LB_PID"

# --- The mix accounts' mailboxes, APPENDed through each setup's own entry point -------------
common() { echo --server "127.0.0.1:$1" --tls-name "$HOSTNAME_" --ca "$RUN/tls/cert.pem"; }
export BENCH_PASSWORD=$PASSWORD
"$IMAP_BENCH" corpus --maildir "$RUN/small" --count "$MIX_SIZE" --seed "$SEED_SMALL" --to "mix@$DOMAIN" 2>/dev/null
mkdir -p "$RUN/results"
for setup in "${SETUPS[@]}"; do
    say "loading $MIX_CLIENTS x $MIX_SIZE messages into $setup's mix accounts"
    for user in "${MIX_USERS[@]}"; do
        # shellcheck disable=SC2046 # common's words are meant to split
        "$IMAP_BENCH" load $(common "${SETUP_IMAP[$setup]}") --user "$user" --maildir "$RUN/small" --connections 2 --json \
            >>"$RUN/results/load.$setup.json" || die "loading $user on $setup failed"
    done
done
sync

# --- Measure --------------------------------------------------------------------------------
# The processes whose CPU is counted, by name: every node, PostgreSQL's tree, HAProxy. All of
# them are counted during every measurement, so the idle cost of those not under load shows.
declare -A WATCH=([postgres]=$PG_PID [haproxy]=$LB_PID)
for name in "${!NODE_PID[@]}"; do WATCH[$name]=${NODE_PID[$name]}; done
cpu_snapshot() {
    local name
    for name in "${!WATCH[@]}"; do echo "$name $(tree_cpu_ticks "${WATCH[$name]}")"; done
}
TICK=$(getconf CLK_TCK)

# measure SETUP STEM TOOL ARGS...: runs the tool with --json into RUN/results/SETUP.STEM.json
# and the CPU seconds each watched process spent meanwhile into RUN/results/SETUP.STEM.cpu.
measure() {
    local setup=$1 stem=$2 out=$RUN/results/$1.$2 started
    shift 2
    cpu_snapshot >"$out.cpu0"
    started=$EPOCHREALTIME
    "$@" --json >"$out.json" || say "warning: $setup $stem reported problems"
    echo "$started $EPOCHREALTIME" | awk '{ print $2 - $1 }' >"$out.wall"
    cpu_snapshot >"$out.cpu1"
    [ -s "$out.json" ] || die "$setup $stem gave no result"
    join <(sort "$out.cpu0") <(sort "$out.cpu1") | awk -v t="$TICK" '{ printf "%s %.2f\n", $1, ($3 - $2) / t }' >"$out.cpu"
    rm -f "$out.cpu0" "$out.cpu1"
    sync   # start the next measurement from a quiet disk
}
submission() {
    local to=$USER_
    [ "$3" = spread ] && to="rcpt{n}@$DOMAIN"
    # shellcheck disable=SC2046
    measure "$1" "$3.$2" "$SMTP_BENCH" $(common "${SETUP_SUB[$1]}") --user "$USER_" --to "$to" \
        --clients "$CLIENTS" --messages "$MESSAGES" --size-kib "$SIZE_KIB"
}
mix() {
    local cycles=()
    [ "$3" = mixk ] && cycles=(--cycles-per-login "$MIX_CYCLES")
    # shellcheck disable=SC2046
    measure "$1" "$3.$2" "$IMAP_BENCH" mix $(common "${SETUP_IMAP[$1]}") --user "mix{n}@$DOMAIN" \
        --clients "$MIX_CLIENTS" --duration "$DURATION" --mailbox-size "$MIX_SIZE" "${cycles[@]}"
}
# Round r starts with setup r mod 3: over three rounds each setup goes first, second and last once.
order() {
    local k=$(($1 % ${#SETUPS[@]}))
    echo "${SETUPS[@]:k}" "${SETUPS[@]:0:k}"
}

LOADS=(submission spread mix)
[ -n "$MIX_CYCLES" ] && LOADS+=(mixk)
say "load: submission $CLIENTS x $MESSAGES x $SIZE_KIB KiB; IMAP mix $MIX_CLIENTS clients x ${DURATION}s${MIX_CYCLES:+ (and with $MIX_CYCLES cycles a login)}; $ROUNDS rounds"
FIRST=1
[ "$WARMUP" = 1 ] && FIRST=0
for round in $(seq "$FIRST" "$ROUNDS"); do
    say "round $round ($([ "$round" = 0 ] && echo "warm-up, submissions only" || echo measured)): $(order "$round"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for load in "${LOADS[@]}"; do
        if [ "$round" = 0 ] && [[ $load == mix* ]]; then continue; fi
        for setup in $(order "$round"); do
            case $load in
                submission | spread) submission "$setup" "$round" "$load" ;;
                *) mix "$setup" "$round" "$load" ;;
            esac
        done
    done
done

say "IDLE push: $IDLE_COUNT APPENDs each; pg3 across nodes (IDLE on node 2, APPEND on node 1)"
# shellcheck disable=SC2046
measure pg3 idle "$IMAP_BENCH" idle $(common $((LB_IMAP_NODE_PORT + 1))) --append-server "127.0.0.1:$LB_IMAP_NODE_PORT" \
    --user "$IDLE_USER" --count "$IDLE_COUNT" --seed 11
for setup in pg1 sqlite; do
    # shellcheck disable=SC2046
    measure "$setup" idle "$IMAP_BENCH" idle $(common "${SETUP_IMAP[$setup]}") --user "$IDLE_USER" --count "$IDLE_COUNT" --seed 11
done
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- What each store holds against what the harness was told was accepted ---------------------
# `account list` columns: account, used, quota, messages, created.
stored() { PC=$RUN/$1 pc account list | awk -v u="$2" '$1 ~ u { n += $4 } END { print n + 0 }'; }
STORED="sqlite.submission=$(stored sqlite "^$USER_\$") pg1.submission=$(stored pg1 "^$USER_\$") pg3.submission=$(stored n1 "^$USER_\$")"
STORED="$STORED sqlite.spread=$(stored sqlite '^rcpt') pg1.spread=$(stored pg1 '^rcpt') pg3.spread=$(stored n1 '^rcpt')"

if [ "$PG_STATS" = 1 ]; then
    for db in single multi; do
        # The view holds every database's statements: only this one's.
        echo "pg_stat_statements, database $db: the 20 statements with the most time"
        psql_ -d "$db" -P pager=off -c "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
            round(mean_exec_time::numeric, 3) AS mean_ms, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
            FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC LIMIT 20"
    done
fi

# --- Report ---------------------------------------------------------------------------------
python3 - "$RUN/results" "$ROUNDS" "$NODES" "$STORED" "${LOADS[*]}" "$MIX_CYCLES" <<'EOF'
import json, os, statistics, sys
results, rounds, nodes, stored, loads, cycles = sys.argv[1:7]
rounds, nodes, loads = int(rounds), int(nodes), loads.split()
stored = dict(kv.split("=") for kv in stored.split())
setups = ("sqlite", "pg1", "pg3")
node_names = {"sqlite": ["sqlite"], "pg1": ["pg1"], "pg3": [f"n{n}" for n in range(1, nodes + 1)]}
problems = []

def result(setup, stem):
    r = json.load(open(f"{results}/{setup}.{stem}.json"))
    cpu = {}
    for line in open(f"{results}/{setup}.{stem}.cpu"):
        name, secs = line.split()
        cpu[name] = float(secs)
    return r, cpu

def units(load, r):
    """What one measurement did: messages accepted, or IMAP operations."""
    return r["accepted"] if load in ("submission", "spread") else r["operations"]

rate_key = {"submission": "msgs_per_s", "spread": "msgs_per_s", "mix": "ops_per_s", "mixk": "ops_per_s"}
title = {"submission": "submission, every message to the sender (msgs/s)",
         "spread": "submission, a recipient per client (msgs/s)", "mix": "IMAP mix, LOGIN each session (ops/s)",
         "mixk": f"IMAP mix, {cycles} cycles a login (ops/s)"}
summary = {}
row = "{:<8} {:>10} {:>9}  {:<22} {:>14} {:>12} {:>10} {:>9}"
for load in loads:
    print(f"\n{title[load]}: median of {rounds} rounds; CPU seconds per 1000 {'operations' if load.startswith('mix') else 'messages'}")
    print(row.format("setup", "rate", "vs sqlite", "per round", "nodes (each)", "postgres", "haproxy", "wall CPU%"))
    med = {}
    for s in setups:
        runs = [result(s, f"{load}.{k}") for k in range(1, rounds + 1)]
        rates = [r[rate_key[load]] for r, _ in runs]
        med[s] = statistics.median(rates)
        # CPU per 1000 units, summed over the measured rounds.
        done = sum(units(load, r) for r, _ in runs) or 1
        per = lambda names: sum(c.get(n, 0) for _, c in runs for n in names) * 1000 / done
        node_total = per(node_names[s])
        each = "/".join(f"{per([n]):.2f}" for n in node_names[s])
        # CPU of the setup's processes over the wall time of the measurements (200% = both cores).
        wall = sum(float(open(f"{results}/{s}.{load}.{k}.wall").read()) for k in range(1, rounds + 1))
        cpu_all = sum(sum(c.get(n, 0) for n in node_names[s] + ["postgres", "haproxy"]) for _, c in runs)
        summary[(load, s)] = {"rate": med[s], "node": node_total, "each": [per([n]) for n in node_names[s]],
                              "pg": per(["postgres"]), "lb": per(["haproxy"])}
        print(row.format(s, f"{med[s]:.1f}", f"{med[s] / med['sqlite']:.2f}x" if med.get("sqlite") else "",
                         " ".join(f"{x:.0f}" for x in rates), f"{node_total:.2f} ({each})" if len(node_names[s]) > 1 else f"{node_total:.2f}",
                         f"{per(['postgres']):.2f}" if s != "sqlite" else "-", f"{per(['haproxy']):.2f}" if s == "pg3" else "-",
                         f"{100 * cpu_all / wall:.0f}%" if wall else ""))
        for k, (r, _) in enumerate(runs, 1):
            if r.get("errors"):
                problems.append(f"{s} {load} round {k}: {r['errors']} errors: {r.get('error_samples')}")
    ratio = med["sqlite"] / med["pg1"] if med["pg1"] else float("inf")
    print(f"PostgreSQL single node vs SQLite: SQLite is {ratio:.2f}x as fast (target: at most 2x): {'met' if ratio <= 2 else 'MISSED'}")

print("\nIDLE push: from the APPEND's tagged OK to `* n EXISTS` at the idler (ms)")
for s, what in (("pg3", "across nodes (IDLE on node 2, APPEND on node 1)"), ("pg1", "one PostgreSQL node"), ("sqlite", "one SQLite node")):
    r, _ = result(s, "idle")
    a = r["after_ok_ms"]
    verdict = f" (target p99 < 1000 ms: {'met' if a['p99'] < 1000 else 'MISSED'})" if s == "pg3" else ""
    print(f"{s:<7} {what:<50} p50 {a['p50']:8.2f}  p99 {a['p99']:8.2f}  max {a['max']:8.2f}  heard {r['heard']}/{r['appends']}{verdict}")
    if r["missed"] or r["problems"]:
        problems.append(f"{s} idle: {r['missed']} missed, {r['problems']}")

# A projection, not a measurement: PostgreSQL on a machine of its own with C cores, each node
# on its own machine with C cores, CPU the only limit (the disk's fsyncs are not in it).
cores = os.cpu_count()
print(f"\nprojection (arithmetic on the CPU per unit above, not a measurement): PostgreSQL and each node on machines of {cores} cores of this kind, CPU the only limit")
for load in loads:
    x = summary[(load, "pg3")]
    unit = "operations" if load.startswith("mix") else "messages"
    pg_cap = 1000 * cores / x["pg"] if x["pg"] else float("inf")
    node_cap = 1000 * cores / (x["node"] / nodes) if x["node"] else float("inf")
    print(f"  {load}: PostgreSQL {x['pg']:.2f} CPU-s per 1000 {unit} -> at most {pg_cap:.0f}/s; a node {x['node'] / nodes:.2f} CPU-s per 1000"
          f" (a third of pg3's) -> {node_cap:.0f}/s each; so one PostgreSQL machine feeds {pg_cap / node_cap:.1f} nodes")

print()
ok = not problems
for key in sorted(stored):
    accepted = sum(json.load(open(f"{results}/{f}"))["accepted"] for f in os.listdir(results)
                   if f.startswith(f"{key}.") and f.endswith(".json"))
    held = int(stored[key] or 0)
    print(f"stored {key}: {held} messages for {accepted} acknowledged: {'all there' if held == accepted else 'MISMATCH'}")
    ok = ok and held == accepted
for p in problems:
    print("PROBLEM", p)
sys.exit(0 if ok else 1)
EOF
