#!/usr/bin/env bash
# The guard under attack (issues 4 and 13): benchmarks over real TLS, IMAP LOGIN and SMTP AUTH
# PLAIN, from many loopback source addresses (all of 127.0.0.0/8 is loopback).
# docs/benchmarks.md ("Guard") says what is measured and how to read it.
#
#   bench/guard.sh                          # enumeration timing, accept latency, one 20 s storm, a slot flood
#   PER_SOURCE="1 4 20" bench/guard.sh      # one storm per value, each on a fresh server
#   STORM=30 SOURCES=120 bench/guard.sh
#   SOURCES="20 249" STORM=40 bench/guard.sh   # time to ban a storm of 20 and of 249 sources
#   ENUM_SAMPLES=0 ROUNDS=2 bench/guard.sh  # storms only: Portcullis and Dovecot twice each
#   ENUM_SAMPLES=0 BANS= FLOOD=0 bench/guard.sh   # storms only
#   PEER=none bench/guard.sh                # Portcullis only
#
# 1. Enumeration timing: the time to refuse an unknown user against a wrong password,
#    ENUM_SAMPLES of each per protocol, interleaved, one at a time, from a trusted network of a
#    server whose failure delay is 1 ms (the shortest the config takes), so that what is
#    measured is the server's work (argon2 against the account's hash or the decoy), not the
#    guard's delay (which depends on the source's failures, never on the name tried).
# 2. Credential-stuffing storm against a server with the DEFAULT guard and limits: the owner of
#    an account logs in from 127.0.0.1 (an address it logged in from before) every 200 ms: IDLE
#    seconds alone, STORM seconds while SOURCES addresses from 127.0.0.2 on, PER_SOURCE
#    connections each, try wrong passwords for the owner, other real accounts and unknown ones
#    as fast as the server answers, then AFTER seconds alone again. Reported: the owner's
#    login latency storm/idle, attacker successes (must be 0), sources banned, and the
#    server's VmRSS/VmHWM, descriptors and threads from /proc.
#
# 3. The peer (PEER=dovecot, the default when run as root with Debian's dovecot-imapd): the
#    same storm against a private Dovecot (IMAPS only, on DOVECOT_PORT, Dovecot's defaults,
#    the same argon2id hashes Portcullis made, read from its store), right after Portcullis's,
#    ROUNDS times with the order alternating. Dovecot has no bans and no per-account known
#    addresses; it delays failures (auth_failure_delay, its per-IP auth penalty) and caps its
#    login processes. The owner logs in over IMAP only there, so compare with Portcullis's
#    IMAP figures (`by_protocol`). Its memory is summed over its process tree (Pss).
# 4. Accept latency with many bans: for each value of BANS, a fresh server whose store holds
#    that many bans (IPv6 /64s, written into its store before it starts, as a storm from one
#    /48 would leave them), then connections one after another from 127.0.0.1 for
#    ACCEPT_SECONDS: the time from connect to the IMAPS greeting, while the server re-reads its
#    bans every second. BANS="0 60000" (the default) gives the ratio.
# 5. Slot flood: FLOOD_SOURCES addresses hold FLOOD_PER_SOURCE silent TLS connections each (as
#    many as the server lets in, a new one whenever one is closed) for FLOOD seconds, against
#    the DEFAULT limits, while the owner logs in from 127.0.0.1 every 500 ms: the owner's login
#    outcomes and latency before and during the flood, how many slots the flood held and for
#    how long the server let a silent connection sit. FLOOD=0 skips it.
#
# The server runs from the release profile. Run as root, it drops to `nobody` as in the other
# benchmarks; as another user it runs as that user. Everything lives in one temp dir, removed
# at the end with every process started here; the JSON reports are kept in OUT.
set -euo pipefail

STORM=${STORM:-20}             # seconds of each storm
IDLE=${IDLE:-20}               # seconds of the idle phase before it
AFTER=${AFTER:-10}             # seconds after it
SOURCES=${SOURCES:-249}        # attacking addresses: 127.0.0.2 ... (at most 253); a list runs one storm per value
PER_SOURCE=${PER_SOURCE:-4}    # connections per attacking address; a list runs one storm per value
BANS=${BANS-0 60000}           # bans in the store for the accept latency; a list runs one server per value; empty skips
ACCEPT_SECONDS=${ACCEPT_SECONDS:-15}
FLOOD=${FLOOD:-90}             # seconds of the slot flood; 0 skips it
FLOOD_SOURCES=${FLOOD_SOURCES:-100}
FLOOD_PER_SOURCE=${FLOOD_PER_SOURCE:-20}
PROBE_MS=${PROBE_MS:-200}      # the owner starts a login every PROBE_MS
ENUM_SAMPLES=${ENUM_SAMPLES:-200}   # per kind and protocol; 0 skips the enumeration timing
ROUNDS=${ROUNDS:-1}            # storms per PER_SOURCE value (and per server)
IMAPS_PORT=${IMAPS_PORT:-27993}
SMTPS_PORT=${SMTPS_PORT:-27465}
DOVECOT_PORT=${DOVECOT_PORT:-27994}
if [ "$(id -u)" -eq 0 ] && [ -x /usr/lib/dovecot/imap-login ] && command -v sqlite3 >/dev/null; then
    PEER=${PEER:-dovecot}      # dovecot: the same storm against Dovecot; none: skip it
else
    PEER=${PEER:-none}
fi
KEEP=${KEEP:-0}                # 1: leave the temp dir (config, logs) for inspection
RUN_BASE=${RUN_BASE:-/tmp}

cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/bench/results/guard-$(date +%Y%m%d-%H%M%S)}
HOSTNAME_=mail.bench.test
DOMAIN=bench.test
OWNER=owner@$DOMAIN
PASSWORD=plinth-orbit-cactus-9
VICTIMS=()
for n in 1 2 3 4 5; do VICTIMS+=("staff$n@$DOMAIN"); done

# say, die, refuse_tmpfs, make_leaf_cert, keep_or_remove, dovecot_imaps_conf
. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"

for sources in $SOURCES; do
    [ "$sources" -ge 1 ] && [ "$sources" -le 253 ] || die "SOURCES must be 1 to 253 (127.0.0.2 ... 127.0.0.254)"
done
[ "$FLOOD_SOURCES" -ge 1 ] && [ "$FLOOD_SOURCES" -le 253 ] || die "FLOOD_SOURCES must be 1 to 253"
case "$PEER" in
    none) ;;
    dovecot)
        [ "$(id -u)" -eq 0 ] || die "PEER=dovecot needs root (a private Dovecot instance); PEER=none skips it"
        [ -x /usr/lib/dovecot/imap-login ] || die "PEER=dovecot needs dovecot-imapd (apt-get install dovecot-imapd)"
        command -v sqlite3 >/dev/null || die "PEER=dovecot needs sqlite3 (it copies Portcullis's hashes)"
        ;;
    *) die "PEER must be dovecot or none" ;;
esac
for port in "$IMAPS_PORT" "$SMTPS_PORT" "$DOVECOT_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set IMAPS_PORT / SMTPS_PORT / DOVECOT_PORT"; fi
done
# The generator holds up to SOURCES x PER_SOURCE connections, the server as many.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

say "building (release)"
cargo build --release -j2 -q -p portcullis -p portcullis-bench
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
BENCH=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-guard-bench

RUN=$(mktemp -d "$RUN_BASE/portcullis-guard-bench.XXXXXX")
chmod 755 "$RUN"   # the server may run as nobody
mkdir -p "$OUT"
SERVER_PID=
FAILED=0

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
DOVECOT_PID=
stop_dovecot() {
    if [ -n "$DOVECOT_PID" ] && kill -0 "$DOVECOT_PID" 2>/dev/null; then
        kill -TERM "$DOVECOT_PID"
        # The master takes its children (login, imap, auth, anvil) down with it.
        for _ in $(seq 100); do kill -0 "$DOVECOT_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    DOVECOT_PID=
}
cleanup() {
    set +e
    stop_server
    stop_dovecot
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_leaf_cert "$RUN/tls" "$HOSTNAME_"
if [ "$(id -u)" -eq 0 ]; then
    PROCESS=$'[process]\nuser = "nobody"\nshutdown_grace = "2s"'
else
    PROCESS=$'[process]\nshutdown_grace = "2s"'
fi

# make_instance NAME EXTRA-TOML: a fresh instance in $RUN/NAME with its config and the
# accounts; sets PC. start_server NAME EXTRA-TOML: that, then serve it; sets SERVER_PID too.
make_instance() {
    PC=$RUN/$1
    mkdir -p "$PC"
    cat >"$PC/portcullis.toml" <<EOF
hostname = "$HOSTNAME_"
data_dir = "data"
[tls]
cert = "$RUN/tls/cert.pem"
key = "$RUN/tls/key.pem"
[listen]
imaps = ["127.0.0.1:$IMAPS_PORT"]
submissions = ["127.0.0.1:$SMTPS_PORT"]
[log]
format = "json"
$PROCESS
$2
EOF
    pc() { "$BIN" --config "$PC/portcullis.toml" "$@"; }
    pc domain add "$DOMAIN" >/dev/null
    echo "$PASSWORD" | pc account add "$OWNER" --password-stdin >/dev/null
    local n=0
    for v in "${VICTIMS[@]}"; do
        n=$((n + 1))
        echo "quarry-lantern-fjord-$n$n" | pc account add "$v" --password-stdin >/dev/null
    done
}
start_server() {
    make_instance "$1" "$2"
    "$BIN" --config "$PC/portcullis.toml" serve >"$PC/log.jsonl" 2>"$PC/stderr" &
    SERVER_PID=$!
    for _ in $(seq 300); do
        [ "$(grep -c '"event":"listening"' "$PC/log.jsonl" 2>/dev/null)" -ge 2 ] && return
        kill -0 "$SERVER_PID" 2>/dev/null || die "Portcullis exited: $(cat "$PC/stderr")"
        sleep 0.1
    done
    die "Portcullis did not start listening"
}

common=(--imaps "127.0.0.1:$IMAPS_PORT" --smtps "127.0.0.1:$SMTPS_PORT" --tls-name "$HOSTNAME_"
    --ca "$RUN/tls/cert.pem")

say "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "Portcullis $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (uncommitted changes)'), release build"

# --- 1. Enumeration timing -------------------------------------------------------------------
if [ "$ENUM_SAMPLES" -gt 0 ]; then
    say "enumeration timing: $ENUM_SAMPLES samples of each kind per protocol, trusted source, failure_delay 1ms"
    start_server enumeration $'[firewall]\ntrusted_networks = ["127.0.0.0/8"]\n[guard]\nfailure_delay = "1ms"\nmax_failure_delay = "1ms"'
    BENCH_PASSWORD=$PASSWORD "$BENCH" enumeration "${common[@]}" --user "$OWNER" --samples "$ENUM_SAMPLES" \
        --json >"$OUT/enumeration.json" || say "warning: the enumeration run had errors"
    python3 - "$OUT/enumeration.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda x: "-" if x is None else f"{x:.2f}"
print(f"{'proto':<6} {'kind':<16} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
for proto, c in r["by_protocol"].items():
    for label, v in (("wrong password", c["wrong_password_ms"]), ("unknown user", c["unknown_user_ms"]),
                     ("  local part", c["unknown_split"]["unknown_local_part_ms"]),
                     ("  domain", c["unknown_split"]["unknown_domain_ms"])):
        print(f"{proto:<6} {label:<16} {v['n']:>4} {f(v['p50']):>8} {f(v['p90']):>8} {f(v['p99']):>8}")
    print(f"{proto:<6} unknown - wrong: median {f(c['median_difference_ms'])} ms (ratio {f(c['median_ratio'])}), "
          f"p90 {f(c['p90_difference_ms'])} ms; P(unknown answered faster) {c['p_unknown_shorter']}")
for e in r["errors"]:
    print("error:", e)
EOF
    stop_server
fi

# --- 4. Accept latency with many bans in the store -----------------------------------------
# add_bans DB N: N automatic bans of IPv6 /64s (2001:db8:X:Y::/64, in force for a day) written
# straight into the store, as a storm from a few /48s would leave them.
add_bans() {
    python3 - "$1" "$2" <<'EOF'
import sqlite3, sys, time
db, n = sqlite3.connect(sys.argv[1]), int(sys.argv[2])
until = int(time.time()) + 86400
db.executemany("INSERT INTO bans(network, until, reason, offence, manual, created) VALUES (?, ?, 'bench', 1, 0, 0)",
               ((f"2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64", until) for i in range(n)))
db.commit()
EOF
}
for bans in $BANS; do
    name=accept-$bans
    say "accept latency with $bans bans in the store: connections one after another from 127.0.0.1 for ${ACCEPT_SECONDS}s"
    make_instance "$name" ""
    add_bans "$PC/data/mail.db" "$bans"
    "$BIN" --config "$PC/portcullis.toml" serve >"$PC/log.jsonl" 2>"$PC/stderr" &
    SERVER_PID=$!
    started=$(date +%s.%N)
    for _ in $(seq 600); do
        [ "$(grep -c '"event":"listening"' "$PC/log.jsonl" 2>/dev/null)" -ge 2 ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "Portcullis exited: $(cat "$PC/stderr")"
        sleep 0.1
    done
    say "  listening after $(python3 -c "import time; print(round(time.time() - $started, 2))") s"
    "$BENCH" accept "${common[@]}" --seconds "$ACCEPT_SECONDS" --timeout 30 >"$OUT/$name.txt" || say "warning: some connections were refused or failed"
    cat "$OUT/$name.txt"
    stop_server
done

# --- 2. The storms: Portcullis with the default guard and limits, and the peer --------------
cat >"$RUN/summary.py" <<'EOF'
# summary.py REPORT.json SERVER LOG BANS ALIVE: adds what the server's log says to the report
# (SERVER portcullis: its JSON log; dovecot: its text log) and prints the storm's figures.
import collections, json, statistics, sys
r = json.load(open(sys.argv[1]))
server_name = sys.argv[2]
del sys.argv[2]
r["server_name"] = server_name
t = r["unix_ms"]
def phase(ts):
    return "before" if ts < t["storm_start"] else "storm" if ts < t["storm_end"] else "after"
events = collections.Counter()
refused = collections.defaultdict(collections.Counter)
failed = collections.Counter()
alerts = collections.Counter()
bans = {}                                  # ip -> ts of its ban
failures = collections.defaultdict(list)   # ip -> ts of each failed login
owner_refused = collections.Counter()
for line in open(sys.argv[2], errors="replace") if server_name == "portcullis" else ():
    try:
        e = json.loads(line)
    except ValueError:
        continue
    ev, ts = e.get("event"), e.get("ts_ms", 0)
    events[ev] += 1
    if ev == "connection_refused":
        refused[phase(ts)][e.get("reason")] += 1
        if e.get("peer", "").startswith("127.0.0.1:"):
            owner_refused[e.get("reason")] += 1
    elif ev == "auth_failed":
        failed[phase(ts)] += 1
        failures[e.get("peer", "").rsplit(":", 1)[0]].append(ts)
    elif ev == "ban_added":
        bans.setdefault(e.get("network", "").split("/")[0], ts)
    elif ev == "alert_raised":
        alerts[e.get("kind")] += 1
ban_s = sorted((ts - t["storm_start"]) / 1000 for ts in bans.values())
before_ban = [sum(1 for f in failures[ip] if f <= ts) for ip, ts in bans.items()]
after_ban = [sum(1 for f in failures[ip] if f > ts) for ip, ts in bans.items()]
r["server_log"] = {
    "events": events, "connection_refused": refused, "owner_refused": owner_refused,
    "auth_failed": failed, "alerts": alerts, "bans_in_store": int(sys.argv[3]), "alive_after": sys.argv[4] == "yes",
    "bans": {"total": len(bans), "during_storm": sum(1 for x in ban_s if x < (t["storm_end"] - t["storm_start"]) / 1000),
             "seconds_after_storm_start": {"first": ban_s[0] if ban_s else None,
                                           "p50": statistics.median(ban_s) if ban_s else None,
                                           "last": ban_s[-1] if ban_s else None},
             "failures_logged_before_ban": {"mean": statistics.mean(before_ban) if before_ban else None,
                                            "max": max(before_ban, default=None)},
             "failures_logged_after_ban": {"mean": statistics.mean(after_ban) if after_ban else None,
                                           "max": max(after_ban, default=None)},
             # Every attacking source banned, this long after the storm began (None: not all were).
             "all_banned_after_s": ban_s[-1] if len(bans) >= r["attackers"]["sources"] and ban_s else None},
}
if server_name == "dovecot":
    # Its log is text: count the lines that say the server turned clients away or failed.
    log = open(sys.argv[2], errors="replace").read().splitlines()
    r["server_log"]["dovecot"] = {
        "process_limit_reached": sum("process_limit" in l for l in log),
        "client_limit_reached": sum("client_limit" in l for l in log),
        "auth_failed_disconnects": sum("auth failed" in l for l in log),
        "errors": sum(" Error: " in l or " Fatal: " in l or " Panic: " in l for l in log),
        "samples": [l for l in log if "_limit" in l or " Error: " in l or " Fatal: " in l][:5],
    }
json.dump(r, open(sys.argv[1], "w"))

f = lambda x: "-" if x is None else f"{x:.1f}"
print(f"{'phase':<6} {'n':>4} {'ok':>4} {'login p50':>10} {'login p99':>10} {'total p50':>10} {'total p99':>10}  owner failures")
for ph in ("idle", "storm", "after"):
    p = r["owner"][ph]
    print(f"{ph:<6} {p['attempts']:>4} {p['ok']:>4} {f(p['login_ms']['p50']):>10} {f(p['login_ms']['p99']):>10} "
          f"{f(p['total_ms']['p50']):>10} {f(p['total_ms']['p99']):>10}  {dict(p['failures']) or 0}"
          f"{'; skipped ticks ' + str(p['skipped_ticks']) if p['skipped_ticks'] else ''}")
q = r["ratios"]["storm_over_idle"]
print(f"storm/idle: login p50 {q['login_p50']}x, p99 {q['login_p99']}x; connect+login p50 {q['total_p50']}x, p99 {q['total_p99']}x"
      f"  (after/idle: login p50 {r['ratios']['after_over_idle']['login_p50']}x, p99 {r['ratios']['after_over_idle']['login_p99']}x)")
a = r["attackers"]
print(f"attackers: {a['attempts']} attempts answered ({a['attempts_per_s']}/s), SUCCESSES {a['successes']}; "
      f"answer time p50 {f(a['answer_ms']['p50'])} ms, p99 {f(a['answer_ms']['p99'])} ms; connections {a['connections']}, "
      f"dropped at accept {a['dropped_at_accept']}, too many connections {a['too_many_connections']}, "
      f"refused unchecked (temporary failure) {a['temporary_failures']}, errors {a['errors']}")
for e in a["error_samples"]:
    print("  error:", e)
l = r["server_log"]
b = l["bans"]
imap = r["owner"]["storm"].get("by_protocol", {}).get("imap")
if imap:
    i0, i1 = r["owner"]["idle"]["by_protocol"]["imap"], imap
    print(f"owner over IMAP only: login p50 {f(i0['login_ms']['p50'])} -> {f(i1['login_ms']['p50'])} ms, "
          f"p99 {f(i0['login_ms']['p99'])} -> {f(i1['login_ms']['p99'])} ms; connect+login p99 "
          f"{f(i0['total_ms']['p99'])} -> {f(i1['total_ms']['p99'])} ms (idle -> storm)")
if server_name == "dovecot":
    d = l["dovecot"]
    print(f"dovecot log: process_limit reached {d['process_limit_reached']}, client_limit {d['client_limit_reached']}, "
          f"auth-failed disconnects {d['auth_failed_disconnects']}, errors {d['errors']}, alive after: {l['alive_after']}")
    for x in d["samples"]:
        print("  ", x[:200])
else:
    tb = b["all_banned_after_s"]
    print(f"TIME TO BAN: {'all ' + str(a['sources']) + ' sources banned ' + f(tb) + ' s after the storm began' if tb is not None else 'only ' + str(b['total']) + ' of ' + str(a['sources']) + ' sources banned'}")
    print(f"bans: {b['total']} sources of {a['sources']} ({b['during_storm']} during the storm; store: {l['bans_in_store']}); "
          f"seconds from the storm's start: first {f(b['seconds_after_storm_start']['first'])}, p50 {f(b['seconds_after_storm_start']['p50'])}, "
          f"last {f(b['seconds_after_storm_start']['last'])}; failed logins per banned source logged before its ban "
          f"{f(b['failures_logged_before_ban']['mean'])} (max {b['failures_logged_before_ban']['max']}), after it "
          f"{f(b['failures_logged_after_ban']['mean'])} (max {b['failures_logged_after_ban']['max']})")
    print(f"server log: auth_failed {dict(l['auth_failed'])}, connection_refused {({k: dict(v) for k, v in l['connection_refused'].items()})}, "
          f"the owner's address refused {dict(l['owner_refused']) or 0}, alerts {dict(l['alerts'])}, "
          f"internal_error {l['events'].get('internal_error', 0)}, alive after: {l['alive_after']}")
s = r["server"]
m = lambda x: f"RSS {x['rss_mib']} MiB (HWM {x['hwm_mib']}), {x['fds']} fds, {x['threads']} threads, {x['processes']} processes"
print(f"server ({s['memory']}): start {m(s['start'])}; storm end {m(s['storm_end'])}; end {m(s['end'])}")
print(f"  peak RSS {s['peak']['rss_mib']} MiB, {s['peak']['fds']} fds, {s['peak']['threads']} threads, {s['peak']['processes']} processes; CPU s idle {s['cpu_s']['idle']}, "
      f"storm {s['cpu_s']['storm']}, after {s['cpu_s']['after']} (the load generator: {s['generator_cpu_s']['idle']}, "
      f"{s['generator_cpu_s']['storm']}, {s['generator_cpu_s']['after']})")
sys.exit(0 if a["successes"] == 0 and l["alive_after"] else 1)
EOF

if [ "$PEER" = dovecot ]; then
    # The same hashes for Dovecot (argon2id m=19456 KiB, t=2, p=1, verified by libsodium):
    # each account's PHC string as Portcullis stored it, from an instance made for that.
    make_instance hashes ""
    mkdir -p "$RUN/dovecot/home"
    sqlite3 -readonly "$PC/data/mail.db" \
        "SELECT a.localpart || '@' || d.name || ':{ARGON2ID}' || a.password_hash FROM accounts a JOIN domains d ON d.id = a.domain_id" \
        >"$RUN/dovecot/passwd"
    [ "$(wc -l <"$RUN/dovecot/passwd")" -eq $((${#VICTIMS[@]} + 1)) ] || die "could not read the hashes from Portcullis' store"
    hash=$(grep "^$OWNER:" "$RUN/dovecot/passwd" | cut -d: -f2-)
    case "$hash" in
        '{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$'*) ;;
        *) die "unexpected hash parameters: ${hash:0:60}" ;;
    esac
    doveadm pw -t "$hash" -p "$PASSWORD" >/dev/null 2>&1 || die "Dovecot does not verify Portcullis' argon2id hash"
    chmod 644 "$RUN/dovecot/passwd"
    chown -R nobody:nogroup "$RUN/dovecot/home"
fi

# start_dovecot NAME: a fresh private Dovecot (IMAPS only, its defaults otherwise) with its
# state in $RUN/NAME, so that no penalty or cache carries over from an earlier storm.
start_dovecot() {
    DC=$RUN/$1
    dovecot_imaps_conf "$DC" "$RUN/dovecot/home" "$DOVECOT_PORT" "$RUN/tls" "$RUN/dovecot/passwd"
    dovecot -c "$DC/dovecot.conf" || die "dovecot did not start: $(tail -5 "$DC/log" 2>/dev/null)"
    for _ in $(seq 100); do
        ss -Hltn "sport = :$DOVECOT_PORT" | grep -q . && [ -s "$DC/run/master.pid" ] && break
        sleep 0.1
    done
    ss -Hltn "sport = :$DOVECOT_PORT" | grep -q . || die "Dovecot is not listening on $DOVECOT_PORT"
    DOVECOT_PID=$(cat "$DC/run/master.pid")
}

victims=$(IFS=,; echo "${VICTIMS[*]}")
storm_args=(--owner "$OWNER" --victims "$victims" --idle "$IDLE" --storm "$STORM"
    --after "$AFTER" --probe-every-ms "$PROBE_MS" --json)

# storm_portcullis NAME PER SOURCES: one storm against a fresh Portcullis, its summary printed.
storm_portcullis() {
    local name=$1 per=$2 sources=$3 status=0 alive=yes bans
    say "Portcullis storm ($name): $sources sources x $per connections for ${STORM}s (idle ${IDLE}s before, ${AFTER}s after); default [guard] and [limits]"
    start_server "$name" ""
    BENCH_PASSWORD=$PASSWORD "$BENCH" storm "${common[@]}" "${storm_args[@]}" --sources "$sources" --per-source "$per" \
        --server-pid "$SERVER_PID" >"$OUT/$name.json" || status=$?
    [ -s "$OUT/$name.json" ] || die "the storm produced no report (status $status)"
    kill -0 "$SERVER_PID" 2>/dev/null || alive=no
    bans=$(pc ban list 2>/dev/null | grep -c '^127\.' || true)
    stop_server
    # What the server's own log says about the same minutes.
    python3 "$RUN/summary.py" "$OUT/$name.json" portcullis "$PC/log.jsonl" "$bans" "$alive" || FAILED=1
}

# storm_dovecot NAME PER SOURCES: the same storm against a fresh Dovecot, over IMAPS only.
storm_dovecot() {
    local name=$1 per=$2 sources=$3 status=0 alive=yes
    say "Dovecot storm ($name): $sources sources x $per connections for ${STORM}s (idle ${IDLE}s before, ${AFTER}s after); IMAPS only, Dovecot's defaults"
    start_dovecot "$name"
    BENCH_PASSWORD=$PASSWORD "$BENCH" storm --imaps "127.0.0.1:$DOVECOT_PORT" --tls-name "$HOSTNAME_" \
        --ca "$RUN/tls/cert.pem" "${storm_args[@]}" --sources "$sources" --per-source "$per" \
        --server-pid "$DOVECOT_PID" --server-tree >"$OUT/$name.json" || status=$?
    [ -s "$OUT/$name.json" ] || die "the storm against Dovecot produced no report (status $status)"
    kill -0 "$DOVECOT_PID" 2>/dev/null || alive=no
    stop_dovecot
    python3 "$RUN/summary.py" "$OUT/$name.json" dovecot "$DC/log" 0 "$alive" || FAILED=1
}

set -- $SOURCES
for sources in $SOURCES; do
    for per in $PER_SOURCE; do
        for round in $(seq "$ROUNDS"); do
            suffix=$per; [ "$#" -gt 1 ] && suffix=$sources-$per; [ "$ROUNDS" -gt 1 ] && suffix=$suffix-$round
            # Who goes first alternates from round to round.
            if [ "$PEER" = none ]; then
                storm_portcullis "storm-$suffix" "$per" "$sources"
            elif [ $((round % 2)) -eq 1 ]; then
                storm_portcullis "storm-$suffix" "$per" "$sources"
                storm_dovecot "dovecot-storm-$suffix" "$per" "$sources"
            else
                storm_dovecot "dovecot-storm-$suffix" "$per" "$sources"
                storm_portcullis "storm-$suffix" "$per" "$sources"
            fi
        done
    done
done

# --- 5. Slot flood --------------------------------------------------------------------------
if [ "$FLOOD" != 0 ]; then
    say "slot flood: $FLOOD_SOURCES sources x $FLOOD_PER_SOURCE silent connections for ${FLOOD}s against the default [limits]; the owner logs in from 127.0.0.1 every 500 ms"
    start_server flood ""
    BENCH_PASSWORD=$PASSWORD "$BENCH" flood --imaps "127.0.0.1:$IMAPS_PORT" --tls-name "$HOSTNAME_" --ca "$RUN/tls/cert.pem" \
        --owner "$OWNER" --sources "$FLOOD_SOURCES" --per-source "$FLOOD_PER_SOURCE" --flood "$FLOOD" \
        --timeout 30 >"$OUT/flood.txt" || say "warning: the owner was refused during the flood"
    cat "$OUT/flood.txt"
    stop_server
fi

# --- 3. Side by side: the owner's IMAP logins (Dovecot is measured over IMAP only) ----------
python3 - "$OUT" <<'EOF'
import glob, json, os, sys
f = lambda x: "-" if x is None else f"{x:.1f}"
q = lambda a, b: "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"
print(f"{'report':<24} {'IMAP login p50 idle/storm ms':>28} {'ratio':>7} {'p99 idle/storm ms':>20} {'ratio':>7} "
      f"{'connect+login p99 ms':>22} {'ratio':>7} {'attempts/s':>10} {'successes':>9}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*storm-*.json"))):
    r = json.load(open(path))
    o = r["owner"]
    pick = lambda ph: o[ph].get("by_protocol", {}).get("imap", o[ph])
    i, s = pick("idle"), pick("storm")
    li, ls, ti, ts = i["login_ms"], s["login_ms"], i["total_ms"], s["total_ms"]
    a = r["attackers"]
    print(f"{os.path.basename(path)[:-5]:<24} {f(li['p50']) + ' / ' + f(ls['p50']):>28} {q(ls['p50'], li['p50']):>7} "
          f"{f(li['p99']) + ' / ' + f(ls['p99']):>20} {q(ls['p99'], li['p99']):>7} "
          f"{f(ti['p99']) + ' / ' + f(ts['p99']):>22} {q(ts['p99'], ti['p99']):>7} {a['attempts_per_s']:>10} {a['successes']:>9}"
          f"{'' if s['ok'] == s['attempts'] else '  owner failures: ' + json.dumps(s['failures'])}")
EOF
say "JSON reports in $OUT"
[ "$FAILED" = 0 ] || die "an attacker got in, or the server died: see above"
