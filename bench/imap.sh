#!/usr/bin/env bash
# IMAP over implicit TLS: Portcullis and Dovecot side by side in one run, on the same messages,
# with the same certificate, the same argon2id password hashes and the same filesystem
# (docs/architecture.md §11). docs/benchmarks.md ("IMAP") says what was measured and how to read it.
#
#   bench/imap.sh                               # 100,000-message mailbox, 16 clients, IDLE x 50
#   MESSAGES=10000 DURATION=10 bench/imap.sh    # a quicker run
#
# Scenarios, each run against both servers in alternating order:
#   large  SELECT, FETCH 1:* (FLAGS), UID FETCH of the last 100 (ENVELOPE BODYSTRUCTURE),
#          UID SEARCH HEADER Message-ID, and SELECT as a new session's first command, on the
#          large mailbox, REPEAT times per round;
#   mix    CLIENTS clients, each with its own MIX_SIZE-message INBOX, looping LOGIN, SELECT,
#          FETCH 1:20 (FLAGS ENVELOPE), UID STORE, LOGOUT for DURATION seconds;
#   idle   an IDLEing client, another APPENDing: time from the APPEND's OK to `* n EXISTS`.
# Needs root on Debian (it installs dovecot-imapd when missing and runs a private Dovecot).
# Everything it creates lives in one temp dir, removed at the end with every process it started.
set -euo pipefail

MESSAGES=${MESSAGES:-100000}   # the large mailbox
REPEAT=${REPEAT:-5}            # rounds of the four commands per measurement
ROUNDS=${ROUNDS:-2}            # measurements of the large mailbox per server (alternating order)
# Unmeasured rounds on each side first. Dovecot builds its index at the first SELECT and
# caches ENVELOPE, BODYSTRUCTURE and the searched header field as they are asked for; its
# SELECTs took about 50 ms (at 100,000 messages) throughout the first round and under 1.5 ms
# from the second on. Two warm-up rounds reach that steady state.
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-16}
DURATION=${DURATION:-20}       # seconds per mix measurement
MIX_SIZE=${MIX_SIZE:-200}      # messages in each mix client's INBOX
MIX_ROUNDS=${MIX_ROUNDS:-2}
# Also run the mix with this many SELECT/FETCH/STORE rounds per login ("" to skip): the same
# commands with fewer password hashes among them.
MIX_CYCLES=${MIX_CYCLES:-50}
IDLE_COUNT=${IDLE_COUNT:-50}   # APPENDs per IDLE measurement
IDLE_ROUNDS=${IDLE_ROUNDS:-2}
LOAD_CONNECTIONS=${LOAD_CONNECTIONS:-8}
PORTCULLIS_PORT=${PORTCULLIS_PORT:-24993}
DOVECOT_PORT=${DOVECOT_PORT:-24994}
KEEP=${KEEP:-0}                # 1: leave the temp dir for inspection (the processes are stopped all the same)
RUN_BASE=${RUN_BASE:-/tmp}     # where the run dir (both servers' data) goes; one filesystem for both

cd "$(dirname "$0")/.."
REPO=$PWD
HOSTNAME_=mail.bench.test
DOMAIN=bench.test
PASSWORD=plinth-orbit-cactus-9
SEED_LARGE=1
SEED_SMALL=2
LARGE_USER=large@$DOMAIN
IDLE_USER=idle@$DOMAIN
MIX_USERS=()
for n in $(seq 1 "$CLIENTS"); do
    MIX_USERS+=("$(printf 'mix%02d@%s' "$n" "$DOMAIN")")
done

# say, die, refuse_tmpfs, make_leaf_cert, keep_or_remove, dovecot_imaps_conf
. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"

[ "$(id -u)" -eq 0 ] || die "run as root (Dovecot is started as a private instance from the run dir)"
[ "$MESSAGES" -ge 200 ] || die "MESSAGES must be at least 200"
[ "$CLIENTS" -le 99 ] || die "CLIENTS must be at most 99"
for port in "$PORTCULLIS_PORT" "$DOVECOT_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set PORTCULLIS_PORT / DOVECOT_PORT"; fi
done

# --- Install the peer -----------------------------------------------------------------------
if [ ! -x /usr/lib/dovecot/imap ] || ! command -v dovecot >/dev/null || ! command -v sqlite3 >/dev/null; then
    say "installing dovecot-imapd and sqlite3"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd sqlite3 >/dev/null
    # Where the install started the distribution's Dovecot (systemd), stop it again: only the
    # private instance below should run, and nothing should listen on 143 or 993.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl stop dovecot 2>/dev/null || true
    fi
fi

# --- Build ----------------------------------------------------------------------------------
say "building (release)"
cargo build --release -j2 -q -p portcullis -p portcullis-bench
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
BENCH=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-imap-bench

# --- Temp dir and cleanup -------------------------------------------------------------------
RUN=$(mktemp -d "$RUN_BASE/portcullis-imap-bench.XXXXXX")
# The servers drop to unprivileged users, who must be able to walk into it.
chmod 755 "$RUN"
PORTCULLIS_PID=
DOVECOT_CONF=$RUN/dovecot/dovecot.conf

cleanup() {
    set +e
    if [ -n "$PORTCULLIS_PID" ] && kill -0 "$PORTCULLIS_PID" 2>/dev/null; then
        kill -TERM "$PORTCULLIS_PID"
        wait "$PORTCULLIS_PID" 2>/dev/null
    fi
    if [ -f "$RUN/dovecot/run/master.pid" ]; then
        local pid
        pid=$(cat "$RUN/dovecot/run/master.pid")
        kill -TERM "$pid" 2>/dev/null
        # The master takes its children (login, imap, auth) down with it.
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_leaf_cert "$RUN/tls" "$HOSTNAME_"

say "machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "Portcullis $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), Dovecot $(dovecot --version)"

# --- The corpus: written as Dovecot's Maildirs, then APPENDed from there to Portcullis ------
HOMES=$RUN/dovecot/home
mkdir -p "$HOMES"
say "writing the corpus: $MESSAGES messages (seed $SEED_LARGE) and $MIX_SIZE per mix account (seed $SEED_SMALL)"
"$BENCH" corpus --maildir "$HOMES/large/Maildir" --count "$MESSAGES" --seed "$SEED_LARGE" --to "$LARGE_USER"
"$BENCH" corpus --maildir "$RUN/small" --count "$MIX_SIZE" --seed "$SEED_SMALL" --to "mix@$DOMAIN" 2>/dev/null
for user in "${MIX_USERS[@]}"; do
    mkdir -p "$HOMES/${user%@*}"
    cp -a "$RUN/small" "$HOMES/${user%@*}/Maildir"
done
mkdir -p "$HOMES/idle"
CORPUS_BYTES=$(du -sb "$HOMES/large/Maildir" | cut -f1)

# --- Portcullis -----------------------------------------------------------------------------
say "starting Portcullis on 127.0.0.1:$PORTCULLIS_PORT"
PC=$RUN/portcullis
mkdir -p "$PC"
cat >"$PC/portcullis.toml" <<EOF
hostname = "$HOSTNAME_"
data_dir = "data"
[tls]
cert = "$RUN/tls/cert.pem"
key = "$RUN/tls/key.pem"
[listen]
imaps = ["127.0.0.1:$PORTCULLIS_PORT"]
[limits]
# Room for the load itself: the default (20 per IP) would cap the loader and the mix.
max_connections_per_ip = $((CLIENTS + LOAD_CONNECTIONS + 10))
[process]
user = "nobody"
shutdown_grace = "5s"
[log]
format = "json"
EOF
# The default argon2 settings apply (m=19456 KiB, t=2, p=1): no [passwords] section.
pc() { "$BIN" --config "$PC/portcullis.toml" "$@"; }
pc domain add "$DOMAIN" >/dev/null
for user in "$LARGE_USER" "$IDLE_USER" "${MIX_USERS[@]}"; do
    echo "$PASSWORD" | pc account add "$user" --password-stdin --quota unlimited >/dev/null
done

# --- The same hashes for Dovecot: each account's PHC string, as Portcullis stored it ---------
mkdir -p "$RUN/dovecot"
sqlite3 -readonly "$PC/data/mail.db" \
    "SELECT a.localpart || '@' || d.name || ':{ARGON2ID}' || a.password_hash FROM accounts a JOIN domains d ON d.id = a.domain_id" \
    >"$RUN/dovecot/passwd"
[ "$(wc -l <"$RUN/dovecot/passwd")" -eq $((CLIENTS + 2)) ] || die "could not read the password hashes from Portcullis' store"
HASH=$(head -1 "$RUN/dovecot/passwd" | cut -d: -f2-)
case "$HASH" in
    '{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$'*) ;;
    *) die "unexpected hash parameters: ${HASH:0:60}" ;;
esac
doveadm pw -t "$HASH" -p "$PASSWORD" >/dev/null 2>&1 || die "Dovecot does not verify Portcullis' argon2id hash"
chmod 644 "$RUN/dovecot/passwd"

"$BIN" --config "$PC/portcullis.toml" serve >"$PC/log.jsonl" 2>"$PC/stderr" &
PORTCULLIS_PID=$!
for _ in $(seq 300); do
    grep -q '"event":"listening"' "$PC/log.jsonl" 2>/dev/null && break
    kill -0 "$PORTCULLIS_PID" 2>/dev/null || die "Portcullis exited: $(cat "$PC/stderr")"
    sleep 0.1
done
grep -q '"event":"listening"' "$PC/log.jsonl" || die "Portcullis did not start listening"
rss() { echo "$(($(ps -o rss= -p "$PORTCULLIS_PID") / 1024)) MiB"; }
say "Portcullis resident memory at start: $(rss)"

mkdir -p "$RUN/results"
common_p=(--server "127.0.0.1:$PORTCULLIS_PORT" --tls-name "$HOSTNAME_" --ca "$RUN/tls/cert.pem")
common_d=(--server "127.0.0.1:$DOVECOT_PORT" --tls-name "$HOSTNAME_" --ca "$RUN/tls/cert.pem")
export BENCH_PASSWORD=$PASSWORD

say "loading Portcullis by APPEND (LITERAL+, $LOAD_CONNECTIONS connections; every APPEND is durable)"
"$BENCH" load "${common_p[@]}" --user "$LARGE_USER" --maildir "$HOMES/large/Maildir" \
    --connections "$LOAD_CONNECTIONS" --json >"$RUN/results/load.large.json" ||
    die "loading failed: $(cat "$RUN/results/load.large.json")"
for user in "${MIX_USERS[@]}"; do
    "$BENCH" load "${common_p[@]}" --user "$user" --maildir "$RUN/small" --connections 2 --json \
        >>"$RUN/results/load.mix.json" || die "loading $user failed"
done
say "Portcullis resident memory after loading: $(rss)"
say "loaded: $(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["appended"], "messages in", r["elapsed_s"], "s,", r["appends_per_s"], "APPENDs/s")' "$RUN/results/load.large.json")"
sync

# --- Dovecot: a private instance, IMAPS only, on the Maildirs the corpus was written to -------
say "starting Dovecot on 127.0.0.1:$DOVECOT_PORT"
chown -R nobody:nogroup "$HOMES"
dovecot_imaps_conf "$RUN/dovecot" "$HOMES" "$DOVECOT_PORT" "$RUN/tls" "$RUN/dovecot/passwd"
dovecot -c "$DOVECOT_CONF" || die "dovecot did not start: $(tail -5 "$RUN/dovecot/log" 2>/dev/null)"
for _ in $(seq 100); do
    ss -Hltn "sport = :$DOVECOT_PORT" | grep -q . && break
    sleep 0.1
done
ss -Hltn "sport = :$DOVECOT_PORT" | grep -q . || die "Dovecot is not listening on $DOVECOT_PORT"
for port in 143 993; do
    if ss -Hltn "sport = :$port" | grep -q .; then say "warning: something listens on port $port (not this script)"; fi
done

# --- Measure --------------------------------------------------------------------------------
# Runs one scenario against one side; $1 side, $2 file stem, the rest are the tool's arguments.
measure() {
    local side=$1 stem=$2 out
    shift 2
    out=$RUN/results/$side.$stem.json
    local common=("${common_p[@]}")
    [ "$side" = dovecot ] && common=("${common_d[@]}")
    "$BENCH" "$1" "${common[@]}" "${@:2}" --json >"$out" || say "warning: $side $stem reported problems"
    [ -s "$out" ] || die "$side $stem gave no result"
    sync   # start the next measurement from a quiet disk
}
order() { if [ $(($1 % 2)) -eq 1 ]; then echo "portcullis dovecot"; else echo "dovecot portcullis"; fi; }

say "large mailbox: $MESSAGES messages, $WARMUP warm-up and $ROUNDS measured rounds x $REPEAT repetitions"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm-up rounds are w1, w2, ...; measured rounds 1, 2, ... Who goes first alternates throughout.
LARGE_ROUNDS=()
for w in $(seq 1 "$WARMUP"); do LARGE_ROUNDS+=("w$w"); done
for r in $(seq 1 "$ROUNDS"); do LARGE_ROUNDS+=("$r"); done
k=0
for round in "${LARGE_ROUNDS[@]}"; do
    k=$((k + 1))
    for side in $(order "$k"); do
        measure "$side" "large.$round" large --user "$LARGE_USER" --messages "$MESSAGES" --seed "$SEED_LARGE" --repeat "$REPEAT"
    done
done

say "Portcullis resident memory: $(rss)"
say "mix: $CLIENTS clients x ${DURATION}s, $MIX_ROUNDS rounds"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$MIX_ROUNDS"); do
    for side in $(order "$round"); do
        measure "$side" "mix.$round" mix --user "mix{n}@$DOMAIN" --clients "$CLIENTS" --duration "$DURATION" --mailbox-size "$MIX_SIZE"
    done
done
if [ -n "$MIX_CYCLES" ]; then
    say "mix with $MIX_CYCLES cycles per login: $CLIENTS clients x ${DURATION}s, $MIX_ROUNDS rounds"
    for round in $(seq 1 "$MIX_ROUNDS"); do
        for side in $(order $((round + 1))); do
            measure "$side" "mixk.$round" mix --user "mix{n}@$DOMAIN" --clients "$CLIENTS" --duration "$DURATION" \
                --mailbox-size "$MIX_SIZE" --cycles-per-login "$MIX_CYCLES"
        done
    done
fi

say "Portcullis resident memory: $(rss)"
say "IDLE: $IDLE_ROUNDS rounds x $IDLE_COUNT APPENDs"
for round in $(seq 1 "$IDLE_ROUNDS"); do
    for side in $(order "$round"); do
        measure "$side" "idle.$round" idle --user "$IDLE_USER" --count "$IDLE_COUNT" --seed $((10 + round))
    done
done
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg); Portcullis resident memory: $(rss)"

# --- Report ---------------------------------------------------------------------------------
python3 - "$RUN/results" "$WARMUP" "$ROUNDS" "$MIX_ROUNDS" "$IDLE_ROUNDS" "${MIX_CYCLES:-0}" "$MESSAGES" "$CORPUS_BYTES" <<'EOF'
import json, statistics, sys, os
results, warmup, rounds, mix_rounds, idle_rounds, cycles, messages, corpus_bytes = sys.argv[1:9]
warmup, rounds, mix_rounds, idle_rounds, cycles = int(warmup), int(rounds), int(mix_rounds), int(idle_rounds), int(cycles)
sides = ("portcullis", "dovecot")
load = lambda side, stem: json.load(open(f"{results}/{side}.{stem}.json"))
ok = True
problems = []

print(f"\nlarge mailbox: {int(messages):,} messages, {int(corpus_bytes) / 1048576:.0f} MiB of Maildir")
l = json.load(open(f"{results}/load.large.json"))
print(f"loading Portcullis by APPEND: {l['elapsed_s']} s, {l['appends_per_s']} APPENDs/s")
steps = [("select", "SELECT INBOX"), ("fetch_flags", "FETCH 1:* (FLAGS)"),
         ("uid_fetch_envelope", "UID FETCH last 100 (ENVELOPE BODYSTRUCTURE)"), ("search_header", "UID SEARCH HEADER Message-ID"),
         ("select_new_session", "SELECT INBOX, first command of a session")]
row = "{:<46} {:>12} {:>12} {:>10}   {}"
print(row.format("command (ms, median of all repetitions)", "Portcullis", "Dovecot", "D/P", "verdict (target: D/P >= 1); per-round medians P | D"))
for key, name in steps:
    med, per_round = {}, {}
    for s in sides:
        runs = [load(s, f"large.{r}")[key] for r in range(1, rounds + 1)]
        med[s] = statistics.median(v for x in runs for v in x["samples_ms"])
        per_round[s] = " ".join(f'{x["median_ms"]:.1f}' for x in runs)
    ratio = med["dovecot"] / med["portcullis"] if med["portcullis"] else float("inf")
    print(row.format(name, f"{med['portcullis']:.2f}", f"{med['dovecot']:.2f}", f"{ratio:.2f}x",
                     ("met" if ratio >= 1 else "MISSED") + f"  {per_round['portcullis']} | {per_round['dovecot']}"))
if warmup:
    print("warm-up rounds (medians; the first ever command, right after loading, in brackets):")
    for key, name in steps:
        cell = {s: " ".join(f'{load(s, f"large.w{w}")[key]["median_ms"]:.1f}' for w in range(1, warmup + 1))
                   + f' [{load(s, "large.w1")[key]["first_ms"]:.1f}]' for s in sides}
        print("{:<46} {:>20} {:>22}".format("  " + name, cell["portcullis"], cell["dovecot"]))
    e = {s: load(s, "large.w1")["examine_ms"] for s in sides}
    print("{:<46} {:>20} {:>22}".format("  EXAMINE before the first round (setup)", f"[{e['portcullis']:.1f}]", f"[{e['dovecot']:.1f}]"))
for s in sides:
    for r in [f"w{w}" for w in range(1, warmup + 1)] + list(range(1, rounds + 1)):
        for p in load(s, f"large.{r}")["problems"]:
            problems.append(f"{s} large round {r}: {p}")

def mix_report(stem, title):
    global ok
    print(f"\n{title}")
    runs = {s: [load(s, f"{stem}.{r}") for r in range(1, mix_rounds + 1)] for s in sides}
    med = lambda s, f: statistics.median(f(x) for x in runs[s])
    print(row.format("", "Portcullis", "Dovecot", "P/D", ""))
    ops = {s: med(s, lambda x: x["ops_per_s"]) for s in sides}
    ratio = ops["portcullis"] / ops["dovecot"] if ops["dovecot"] else float("inf")
    per_round = ", ".join(f'{a["ops_per_s"] / b["ops_per_s"]:.2f}x' for a, b in zip(runs["portcullis"], runs["dovecot"]) if b["ops_per_s"])
    print(row.format("operations/s (median of rounds)", f"{ops['portcullis']:.1f}", f"{ops['dovecot']:.1f}", f"{ratio:.2f}x",
                     ("met" if ratio >= 1 else "MISSED") + f" (per round {per_round}; target P/D >= 1)"))
    lg = {s: med(s, lambda x: x["logins_per_s"]) for s in sides}
    print(row.format("logins/s", f"{lg['portcullis']:.2f}", f"{lg['dovecot']:.2f}", f"{lg['portcullis'] / lg['dovecot']:.2f}x" if lg["dovecot"] else "", ""))
    for kind in ("connect", "login", "select", "fetch", "store", "logout"):
        for p in ("p50", "p99"):
            v = {s: med(s, lambda x: x["latency_ms"][kind][p]) for s in sides}
            print(row.format(f"{kind} {p} ms", f"{v['portcullis']:.2f}", f"{v['dovecot']:.2f}", "", ""))
    for s in sides:
        for r, x in enumerate(runs[s], 1):
            if x["errors"]:
                problems.append(f"{s} {stem} round {r}: {x['errors']} errors: {x['error_samples']}")

mix_report("mix", "mix: LOGIN, SELECT, FETCH 1:20 (FLAGS ENVELOPE), UID STORE, LOGOUT per session")
if cycles:
    mix_report("mixk", f"mix with {cycles} x (SELECT, FETCH, STORE) per login")

print("\nIDLE push: from the APPEND's tagged OK to `* n EXISTS` at the idler (ms)")
print(row.format("", "Portcullis", "Dovecot", "", "target: p99 <= 100 ms (Portcullis)"))
runs = {s: [load(s, f"idle.{r}") for r in range(1, idle_rounds + 1)] for s in sides}
for p in ("p50", "p99", "max"):
    v = {s: max(x["after_ok_ms"][p] for x in runs[s]) if p == "max" else statistics.median(x["after_ok_ms"][p] for x in runs[s]) for s in sides}
    verdict = ("met" if v["portcullis"] <= 100 else "MISSED") if p == "p99" else ""
    print(row.format(f"{p}" + (" (median of rounds)" if p != "max" else ""), f"{v['portcullis']:.2f}", f"{v['dovecot']:.2f}", "", verdict))
for s in sides:
    heard = sum(x["heard"] for x in runs[s]); missed = sum(x["missed"] for x in runs[s])
    within = sum(x["within_100ms"] for x in runs[s])
    print(f"{s}: {heard} pushes heard, {missed} missed, {within} within 100 ms of the OK")
    for r, x in enumerate(runs[s], 1):
        for p in x["problems"]:
            problems.append(f"{s} idle round {r}: {p}")
        if x["missed"]:
            problems.append(f"{s} idle round {r}: {x['missed']} pushes missed")

for p in problems:
    print("PROBLEM", p)
sys.exit(1 if problems else 0)
EOF
