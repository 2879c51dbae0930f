#!/usr/bin/env bash
# SMTP submission over implicit TLS: Portcullis and Postfix side by side in one run, same load,
# same certificate, same filesystem, each fsyncing every message before it answers 250
# (docs/architecture.md §11). docs/benchmarks.md says what was measured and how to read it.
#
#   bench/submission.sh                      # 8 clients x 200 messages x 10 KiB, 5 rounds
#   CLIENTS=16 MESSAGES=100 SIZE_KIB=64 ROUNDS=5 bench/submission.sh
#
# After a warm-up round, rounds alternate the order of the two servers; the ratio reported is
# that of the median rates, since this machine is noisy: compare ratios within one run, not
# figures across runs.
# Needs root on Debian (it installs postfix and dovecot-core when missing). Everything it
# creates lives in one temp dir under /tmp, removed at the end with every process it started.
set -euo pipefail

CLIENTS=${CLIENTS:-8}
MESSAGES=${MESSAGES:-200}
SIZE_KIB=${SIZE_KIB:-10}
ROUNDS=${ROUNDS:-5}
# An unmeasured first round for each side: a fresh Portcullis grows its SQLite WAL during its
# first ~1600 messages and runs slower meanwhile; a server in service has long done that.
WARMUP=${WARMUP:-1}
PORTCULLIS_PORT=${PORTCULLIS_PORT:-24465}
POSTFIX_PORT=${POSTFIX_PORT:-24466}
KEEP=${KEEP:-0}   # 1: leave the temp dir for inspection (the processes are stopped all the same)
RUN_BASE=${RUN_BASE:-/tmp}   # where the run dir (both servers' data) goes; one filesystem for both

cd "$(dirname "$0")/.."
REPO=$PWD
HOSTNAME_=mail.bench.test
DOMAIN=bench.test
USER_=bench@bench.test
PASSWORD=plinth-orbit-cactus-9
PER_ROUND=$((CLIENTS * MESSAGES))

# say, die, refuse_tmpfs, make_leaf_cert, keep_or_remove, pc, start_portcullis, postfix_dirs, …
. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix and Dovecot are started as their own instance from /tmp)"
for port in "$PORTCULLIS_PORT" "$POSTFIX_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; set PORTCULLIS_PORT / POSTFIX_PORT"; fi
done

# --- Install the peer -----------------------------------------------------------------------
if ! command -v postfix >/dev/null || ! command -v dovecot >/dev/null; then
    say "installing postfix and dovecot-core"
    # No configuration: the distribution's own instance stays unconfigured and stopped;
    # this script runs a private instance instead.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix dovecot-core >/dev/null
    # Where the install started the distribution's services (systemd), stop them again: only
    # the private instances below should run, and nothing should listen on port 25.
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl stop postfix dovecot 2>/dev/null || true
    fi
fi

# --- Build ----------------------------------------------------------------------------------
say "building (release)"
cargo build --release -j2 -q -p portcullis -p portcullis-bench
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis
BENCH=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis-bench

# --- Temp dir and cleanup -------------------------------------------------------------------
RUN=$(mktemp -d "$RUN_BASE/portcullis-bench.XXXXXX")
# The servers drop to unprivileged users, who must be able to walk into it.
chmod 755 "$RUN"
PORTCULLIS_PID=
DOVECOT_CONF=$RUN/dovecot/dovecot.conf
POSTFIX_ETC=$RUN/postfix/etc
POSTFIX_STARTED=0

cleanup() {
    set +e
    stop_portcullis
    if [ "$POSTFIX_STARTED" = 1 ]; then
        local master
        master=$(head -c 20 "$RUN/postfix/spool/pid/master.pid" 2>/dev/null | tr -dc 0-9)
        postfix -c "$POSTFIX_ETC" stop >/dev/null 2>&1
        # `postfix stop` only signals the master: wait until it and its children are gone.
        for _ in $(seq 100); do
            [ -n "$master" ] && kill -0 "$master" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [ -f "$RUN/dovecot/run/master.pid" ]; then
        local pid
        pid=$(cat "$RUN/dovecot/run/master.pid")
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make_leaf_cert "$RUN/tls" "$HOSTNAME_"

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
submissions = ["127.0.0.1:$PORTCULLIS_PORT"]
[limits]
# Room for the load itself; the defaults (20 per IP, 10000 commands) would cap larger runs.
max_connections_per_ip = $((CLIENTS + 10))
max_commands = $((MESSAGES * 4 + 100))
[guard]
# The load sends far more than a person would; the per-account sending limits (500 messages an
# hour by default) would stop it. Postfix has no such limit by default.
max_messages_per_hour = 1000000
max_recipients_per_hour = 1000000
# Every client logs in to the same account at once from an address it never logged in from:
# beyond 20 such attempts at a time the guard refuses them unchecked (issue 13 item 7) and
# bans the source (item 4). The benchmark measures submission, not that defence.
unknown_source_attempts = $((CLIENTS + 10))
ban_after_attempts = $((CLIENTS + 10))
[process]
user = "nobody"
shutdown_grace = "5s"
[log]
format = "json"
EOF
# The default argon2 settings apply: no [passwords] section.
pc_add_user "$DOMAIN" "$USER_" "$PASSWORD"
start_portcullis "$PORTCULLIS_PORT"

# --- Dovecot (SASL for Postfix only: no protocol listeners) ---------------------------------
say "starting Dovecot auth and Postfix on 127.0.0.1:$POSTFIX_PORT"
mkdir -p "$RUN/dovecot"
# ARGON2ID with Dovecot's defaults (m=64 MiB, t=3); logins happen outside the timed part.
printf '%s:%s\n' "$USER_" "$(doveadm pw -s ARGON2ID -p "$PASSWORD")" >"$RUN/dovecot/passwd"
chmod 644 "$RUN/dovecot/passwd"
cat >"$DOVECOT_CONF" <<EOF
base_dir = $RUN/dovecot/run
state_dir = $RUN/dovecot/state
log_path = $RUN/dovecot/log
protocols = none
ssl = no
# Postfix talks to the auth socket only after its own TLS; nothing here is on the network.
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=ARGON2ID $RUN/dovecot/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $RUN/dovecot/auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
dovecot -c "$DOVECOT_CONF"

# --- Postfix: a private instance (own config, queue and data dirs), SMTPS only --------------
postfix_dirs
mkdir -p "$RUN/mail"
# Virtual mailboxes belong to nobody, like Portcullis' store.
chown nobody:nogroup "$RUN/mail"
echo "$USER_ $DOMAIN/bench/" >"$POSTFIX_ETC/vmailbox"   # trailing slash: Maildir
{ postfix_main_base "$HOSTNAME_" "$DOMAIN" 127.0.0.1; cat; } >"$POSTFIX_ETC/main.cf" <<EOF
smtpd_banner = \$myhostname ESMTP
# Portcullis does no reverse DNS either.
smtpd_peername_lookup = no
smtpd_tls_cert_file = $RUN/tls/cert.pem
smtpd_tls_key_file = $RUN/tls/key.pem
smtpd_tls_security_level = encrypt
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_session_cache_database =
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $RUN/dovecot/auth-postfix
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
# Room for the load, as for Portcullis.
smtpd_client_connection_count_limit = $((CLIENTS + 10))
# Local delivery to Maildir (virtual(8) fsyncs each file before it counts as delivered).
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $RUN/mail
virtual_mailbox_maps = texthash:$POSTFIX_ETC/vmailbox
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
alias_maps =
alias_database =
local_recipient_maps =
# Nothing leaves the machine.
relayhost =
default_transport = error:outbound mail is off in the benchmark
EOF
# No port 25: the only listener is SMTPS on the loopback high port. No chroot (the queue dir
# is private to this run and would need copies of /etc files inside it).
cat >"$POSTFIX_ETC/master.cf" <<EOF
127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
$(postfix_services)
EOF
# Postfix prints its complaints only to a terminal: on failure, rerun with KEEP=1 and try
# `postfix -c DIR check` by hand.
postfix -c "$POSTFIX_ETC" check >/dev/null 2>&1 || die "postfix check failed for $POSTFIX_ETC"
postfix -c "$POSTFIX_ETC" start >/dev/null 2>&1 || die "postfix did not start: $(tail -5 "$RUN/postfix/maillog" 2>/dev/null)"
POSTFIX_STARTED=1
for _ in $(seq 100); do
    ss -Hltn "sport = :$POSTFIX_PORT" | grep -q . && break
    sleep 0.1
done
ss -Hltn "sport = :$POSTFIX_PORT" | grep -q . || die "Postfix is not listening on $POSTFIX_PORT"
for port in 25 465 587; do
    if ss -Hltn "sport = :$port" | grep -q .; then say "warning: something listens on port $port (not this script)"; fi
done

# --- Measure --------------------------------------------------------------------------------
mkdir -p "$RUN/results"
# `account list` columns: account, used, quota, messages, created (quota is one word,
# "unlimited", because the account was made with --quota unlimited).
portcullis_count() { pc account list | awk -v u="$USER_" '$1 == u { print $4 }'; }
maildir_count() {
    local dir=$RUN/mail/$DOMAIN/bench/new   # created by the first delivery
    if [ -d "$dir" ]; then find "$dir" -type f | wc -l; else echo 0; fi
}
# A field of a harness JSON result.
field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# Runs the harness against one server; $1 names it, $2 is its port. Writes $RUN/results/$1.$round.json.
measure() {
    local name=$1 port=$2 out="$RUN/results/$1.$round.json"
    BENCH_PASSWORD=$PASSWORD "$BENCH" --server "127.0.0.1:$port" --tls-name "$HOSTNAME_" --ca "$RUN/tls/cert.pem" \
        --user "$USER_" --clients "$CLIENTS" --messages "$MESSAGES" \
        --size-kib "$SIZE_KIB" --json >"$out" || say "warning: $name had errors in round $round"
    [ -s "$out" ] && [ "$(field "$out" accepted)" -gt 0 ] ||
        die "$name accepted nothing: $(cat "$out" 2>/dev/null)"
    ACCEPTED[$name]=$((ACCEPTED[$name] + $(field "$out" accepted)))
}
declare -A ACCEPTED=([portcullis]=0 [postfix]=0)

queue_count() { find "$RUN/postfix/spool/incoming" "$RUN/postfix/spool/active" "$RUN/postfix/spool/deferred" -type f | wc -l; }

# Postfix accepts into its queue; delivery to the Maildir and removal of the queue file follow.
# Wait for both before the next round, so that one side's backlog never runs during the other's
# measurement.
wait_postfix() {
    local want=$1 started=$SECONDS
    while [ "$(maildir_count)" -lt "$want" ]; do
        [ $((SECONDS - started)) -lt 300 ] || { say "warning: Postfix delivered only $(maildir_count) of $want"; return; }
        sleep 0.05
    done
    delivered_at=$EPOCHREALTIME
    while [ "$(queue_count)" -gt 0 ]; do
        [ $((SECONDS - started)) -lt 300 ] || { say "warning: Postfix's queue is not empty"; return; }
        sleep 0.05
    done
}

say "load: $CLIENTS clients x $MESSAGES messages x $SIZE_KIB KiB, $ROUNDS rounds, on $(nproc) cores"
# Other work on the machine skews both sides; at least make it visible.
say "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
FIRST=1
[ "$WARMUP" = 1 ] && FIRST=0   # round 0 is the warm-up
for round in $(seq "$FIRST" "$ROUNDS"); do
    # Alternate who goes first: caches, disk state and background noise then favour neither.
    if [ $((round % 2)) -eq 1 ]; then order="portcullis postfix"; else order="postfix portcullis"; fi
    for side in $order; do
        if [ "$side" = portcullis ]; then
            measure portcullis "$PORTCULLIS_PORT"
        else
            measure postfix "$POSTFIX_PORT"
            done_at=$EPOCHREALTIME
            wait_postfix "${ACCEPTED[postfix]}"
            # Seconds from the last 250 to the last Maildir file, and to an empty queue.
            echo "$done_at $delivered_at $EPOCHREALTIME" | awk '{ printf "%.3f %.3f\n", $2 - $1, $3 - $1 }' \
                >"$RUN/results/postfix.$round.drain"
        fi
        sync   # start the next measurement from a quiet disk
    done
done

# --- Prove every message landed: what each side holds against what it acknowledged ----------
PC_STORED=$(portcullis_count)
PF_STORED=$(maildir_count)

# --- Report ---------------------------------------------------------------------------------
python3 - "$RUN/results" "$FIRST" "$ROUNDS" "$PC_STORED" "$PF_STORED" <<'EOF'
import json, statistics, sys
results, first, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stored = {"portcullis": int(sys.argv[4] or 0), "postfix": int(sys.argv[5] or 0)}
how = {"portcullis": "portcullis account list", "postfix": "files in the Maildir"}
sides = ("portcullis", "postfix")
every = {s: [json.load(open(f"{results}/{s}.{r}.json")) for r in range(first, rounds + 1)] for s in sides}
drain = [[float(t) for t in open(f"{results}/postfix.{r}.drain").read().split()] for r in range(first, rounds + 1)]

row = "{:<7} {:<11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}  {}"
print(row.format("round", "server", "msgs/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", ""))
for i, r in enumerate(range(first, rounds + 1)):
    for s in sides:
        x = every[s][i]
        lat = x["latency_ms"]
        note = f"after the last 250: all delivered in {drain[i][0]:.2f} s, queue empty in {drain[i][1]:.2f} s" if s == "postfix" else ""
        print(row.format(r or "warm-up", s, f'{x["msgs_per_s"]:.1f}', lat["p50"], lat["p90"], lat["p99"], lat["max"], x["errors"], note))

runs = {s: every[s][1 - first:] for s in sides}   # the measured rounds
med = lambda s, f: statistics.median(f(x) for x in runs[s])
rate = {s: med(s, lambda x: x["msgs_per_s"]) for s in sides}
print()
for s in sides:
    print(row.format("median", s, f"{rate[s]:.1f}", f'{med(s, lambda x: x["latency_ms"]["p50"]):.2f}',
                     f'{med(s, lambda x: x["latency_ms"]["p90"]):.2f}', f'{med(s, lambda x: x["latency_ms"]["p99"]):.2f}',
                     f'{med(s, lambda x: x["latency_ms"]["max"]):.2f}', "", ""))
ratios = [a["msgs_per_s"] / b["msgs_per_s"] for a, b in zip(runs["portcullis"], runs["postfix"])]
print(f"\nratio Portcullis/Postfix: {rate['portcullis'] / rate['postfix']:.2f}x of the medians"
      f" (per round: {', '.join(f'{q:.2f}x' for q in ratios)}); target at least 1.5x")

ok = True
for s in sides:
    accepted = sum(x["accepted"] for x in every[s])
    errors = sum(x["errors"] for x in every[s])
    verdict = "all there" if stored[s] == accepted else "MISMATCH"
    print(f"stored {s}: {stored[s]} messages ({how[s]}) for {accepted} acknowledged, {errors} errors: {verdict}")
    ok = ok and stored[s] == accepted and errors == 0
    for e in sorted({e for x in every[s] for e in x["error_samples"]}):
        print(f"  error: {e}")
sys.exit(0 if ok else 1)
EOF
