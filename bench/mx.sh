#!/usr/bin/env bash
# Inbound mail on port 25 (issue 14): Portcullis and Postfix side by side in one run, the same
# load from Postfix's own smtp-source, the same DNS server, the same filesystem, each fsyncing
# every message before it answers 250, and each with its sender checks on:
#   Portcullis: SPF (MAIL FROM and HELO), DKIM, DMARC, ARC, FCrDNS, the sender domain's MX, all
#               of it through its one resolver ([dns]) and written into Authentication-Results;
#   Postfix:    policyd-spf (SPF for MAIL FROM and HELO, Received-SPF), OpenDKIM verifying as a
#               milter (Authentication-Results), reject_unknown_sender_domain (the MX check).
# docs/benchmarks.md says what was measured and how to read it.
#
#   bench/mx.sh                                  # 8 sessions x 1000 messages x 10 KiB, 5 rounds
#   SESSIONS=16 MESSAGES=2000 SIZE_KIB=64 ROUNDS=5 bench/mx.sh
#
# After a warm-up round, rounds alternate the order of the two servers; the ratio reported is that
# of the median rates (this machine is noisy: compare ratios within one run). smtp-source speaks
# plaintext SMTP (it has no STARTTLS), so neither side does TLS here.
#
# Both servers ask one dnsmasq on 127.0.0.153:53 for the sender's records. Postfix, policyd-spf
# and OpenDKIM read /etc/resolv.conf, so they run in a mount namespace of their own where a
# private resolv.conf is bound over it; the machine's own resolv.conf is never touched.
# Needs root on Debian with postfix, postfix-policyd-spf-python, opendkim and dnsmasq installed.
# Everything it creates lives in one temp dir under RUN_BASE, removed at the end with every
# process it started.
set -euo pipefail

SESSIONS=${SESSIONS:-8}
MESSAGES=${MESSAGES:-1000}   # per round, across all sessions
SIZE_KIB=${SIZE_KIB:-10}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
PORTCULLIS_PORT=${PORTCULLIS_PORT:-24025}
POSTFIX_PORT=${POSTFIX_PORT:-24026}
DNS_ADDR=127.0.0.153
KEEP=${KEEP:-0}
RUN_BASE=${RUN_BASE:-/var/tmp}

cd "$(dirname "$0")/.."
REPO=$PWD
HOSTNAME_=mail.bench.test
DOMAIN=bench.test
USER_=bench@bench.test
SENDER_DOMAIN=sender.bench
SENDER=news@$SENDER_DOMAIN
HELO=mx.$SENDER_DOMAIN

. "$REPO/bench/lib.sh"
refuse_tmpfs "$RUN_BASE"
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix, OpenDKIM and dnsmasq are started as private instances)"
for tool in postfix smtp-source policyd-spf opendkim dnsmasq unshare; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install postfix postfix-policyd-spf-python opendkim dnsmasq"
done
for port in "$PORTCULLIS_PORT" "$POSTFIX_PORT"; do
    if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use"; fi
done
if ss -Hlun "src = $DNS_ADDR" | grep -q ":53 "; then die "$DNS_ADDR:53 is in use"; fi

say "building (release)"
cargo build --release -j2 -q -p portcullis
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis

RUN=$(mktemp -d "$RUN_BASE/portcullis-mx-bench.XXXXXX")
chmod 755 "$RUN"
# OpenDKIM refuses a configuration file below a directory others may write to (/tmp, /var/tmp):
# its own goes under the build's target directory.
DKIM_DIR=$(mktemp -d "${CARGO_TARGET_DIR:-$REPO/target}/mx-bench-opendkim.XXXXXX")
chmod 755 "$DKIM_DIR"
PORTCULLIS_PID=
DNS_PID=
NS_PID=
POSTFIX_ETC=$RUN/postfix/etc

cleanup() {
    set +e
    stop_portcullis
    # The namespace's keeper: stops Postfix and OpenDKIM inside it, then exits.
    stop_keeper
    stop_dnsmasq
    rm -rf "$DKIM_DIR"
    keep_or_remove "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- DNS: the sender's records, for both servers --------------------------------------------
say "starting dnsmasq on $DNS_ADDR:53"
start_dnsmasq "$DNS_ADDR" <<EOF
mx-host=$SENDER_DOMAIN,$HELO,10
host-record=$HELO,127.0.0.1
txt-record=$SENDER_DOMAIN,"v=spf1 ip4:127.0.0.0/8 -all"
txt-record=$HELO,"v=spf1 ip4:127.0.0.0/8 -all"
txt-record=_dmarc.$SENDER_DOMAIN,"v=DMARC1; p=reject"
EOF

# --- Portcullis ------------------------------------------------------------------------------
make_leaf_cert "$RUN/tls" "$HOSTNAME_"
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
smtp = ["127.0.0.1:$PORTCULLIS_PORT"]
[limits]
max_connections_per_ip = $((SESSIONS + 10))
max_commands = 1000000
[smtp]
# The load is one source sending far more than any one server would; Postfix has no such
# per-client rates by default (its anvil limits are off).
max_connections_per_ip = $((SESSIONS + 10))
connections_per_minute = 0
messages_per_minute = 0
recipients_per_minute = 0
[dns]
servers = ["$DNS_ADDR:53"]
[process]
user = "nobody"
shutdown_grace = "5s"
[log]
format = "json"
EOF
pc_add_user "$DOMAIN" "$USER_" "plinth-orbit-cactus-9"
start_portcullis "$PORTCULLIS_PORT"

# --- Postfix with policyd-spf and OpenDKIM, in a namespace with the private resolv.conf -------
say "starting Postfix (policyd-spf, OpenDKIM) on 127.0.0.1:$POSTFIX_PORT"
postfix_dirs
mkdir -p "$RUN/mail"
chown nobody:nogroup "$RUN/mail"
echo "$USER_ $DOMAIN/bench/" >"$POSTFIX_ETC/vmailbox"
{ postfix_main_base "$HOSTNAME_" "$DOMAIN" 127.0.0.1; cat; } >"$POSTFIX_ETC/main.cf" <<EOF
smtpd_banner = \$myhostname ESMTP
# Mail from the world: not a relay, the sender domain must exist (MX or A), SPF through
# policyd-spf; DKIM (and its Authentication-Results) through OpenDKIM. Limits sized for the load.
mynetworks =
smtpd_helo_required = yes
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination, reject_unknown_sender_domain, check_policy_service unix:private/policyd-spf
policyd-spf_time_limit = 3600
smtpd_milters = unix:$RUN/dkim/opendkim.sock
milter_default_action = tempfail
smtpd_client_connection_count_limit = $((SESSIONS + 10))
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $RUN/mail
virtual_mailbox_maps = texthash:$POSTFIX_ETC/vmailbox
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
default_transport = error:outbound mail is off in the benchmark
EOF
cat >"$POSTFIX_ETC/master.cf" <<EOF
127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd
$(postfix_services)
policyd-spf unix     - n n -  0 spawn user=nobody argv=/usr/bin/policyd-spf $RUN/policyd-spf.conf
EOF
# Debian's defaults (reject on Fail, for HELO and MAIL FROM; a Received-SPF header), except that
# loopback is not skipped: the load comes from 127.0.0.1.
cat >"$RUN/policyd-spf.conf" <<EOF
debugLevel = 1
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.255/32
EOF
chmod 644 "$RUN/policyd-spf.conf"
mkdir -p "$RUN/dkim"
chown nobody "$RUN/dkim"
# A Unix socket, as Debian's opendkim package sets it up. Verifying only; the loadgen's address is not "internal" (which would skip verification), and
# the Authentication-Results field is added to unsigned mail too, as Portcullis does.
cat >"$DKIM_DIR/opendkim.conf" <<EOF
Mode v
Socket local:$RUN/dkim/opendkim.sock
UMask 000
InternalHosts 192.0.2.255
AlwaysAddARHeader yes
AuthservID $HOSTNAME_
Syslog no
UserID nobody
PidFile $RUN/opendkim.pid
EOF
postfix -c "$POSTFIX_ETC" check >/dev/null 2>&1 || die "postfix check failed for $POSTFIX_ETC"
# The keeper, in the namespace with our resolv.conf: OpenDKIM (verifying; Authentication-Results
# with our host name) and Postfix, both stopped when cleanup() stops the keeper.
start_keeper "opendkim -x '$DKIM_DIR/opendkim.conf' 2>'$RUN/opendkim.log'" "kill \$(cat '$RUN/opendkim.pid') 2>/dev/null"
wait_keeper_postfix "$POSTFIX_PORT"
for _ in $(seq 100); do
    [ -S "$RUN/dkim/opendkim.sock" ] && break
    sleep 0.1
done
[ -S "$RUN/dkim/opendkim.sock" ] || die "OpenDKIM is not listening: $(cat "$RUN/opendkim.log")"

# --- Measure ---------------------------------------------------------------------------------
mkdir -p "$RUN/results"
portcullis_count() { pc account list | awk -v u="$USER_" '$1 == u { print $4 }'; }
maildir_count() {
    local dir=$RUN/mail/$DOMAIN/bench/new
    if [ -d "$dir" ]; then find "$dir" -type f | wc -l; else echo 0; fi
}
queue_count() { find "$RUN/postfix/spool/incoming" "$RUN/postfix/spool/active" "$RUN/postfix/spool/deferred" -type f | wc -l; }

# Runs smtp-source against one server: $1 names it, $2 is its port. Writes the elapsed seconds
# to $RUN/results/$1.$round.
measure() {
    local name=$1 port=$2 start end
    start=$EPOCHREALTIME
    # -s parallel sessions, -m messages in all, -l bytes, -M the HELO name, -f/-t the envelope,
    # -d several messages per connection (as a busy sending MTA does); smtp-source waits for the
    # greeting and each reply (no pipelining), so neither server sees an early talker.
    smtp-source -s "$SESSIONS" -m "$MESSAGES" -l $((SIZE_KIB * 1024)) -M "$HELO" -f "$SENDER" -t "$USER_" -d \
        "127.0.0.1:$port" 2>"$RUN/results/$name.$round.err" || say "warning: smtp-source reported errors against $name"
    end=$EPOCHREALTIME
    echo "$start $end" | awk '{ printf "%.4f\n", $2 - $1 }' >"$RUN/results/$name.$round"
}

wait_postfix() {
    local want=$1 started=$SECONDS
    while [ "$(maildir_count)" -lt "$want" ]; do
        [ $((SECONDS - started)) -lt 300 ] || { say "warning: Postfix delivered only $(maildir_count) of $want"; return; }
        sleep 0.05
    done
    while [ "$(queue_count)" -gt 0 ]; do
        [ $((SECONDS - started)) -lt 300 ] || { say "warning: Postfix's queue is not empty"; return; }
        sleep 0.05
    done
}

say "load: $SESSIONS sessions, $MESSAGES messages x $SIZE_KIB KiB a round, $ROUNDS rounds, on $(nproc) cores"
say "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
FIRST=1
[ "$WARMUP" = 1 ] && FIRST=0
rounds_done=0
for round in $(seq "$FIRST" "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then order="portcullis postfix"; else order="postfix portcullis"; fi
    for side in $order; do
        if [ "$side" = portcullis ]; then
            measure portcullis "$PORTCULLIS_PORT"
        else
            measure postfix "$POSTFIX_PORT"
            wait_postfix $(((rounds_done + 1) * MESSAGES))
        fi
        sync
    done
    rounds_done=$((rounds_done + 1))
done

PC_STORED=$(portcullis_count)
PF_STORED=$(maildir_count)
# What each side's checks concluded, from one message of each.
PC_SAMPLE=$(grep -m1 '"event":"sender_verdict"' "$PC/log.jsonl" || true)
PF_SAMPLE=$(find "$RUN/mail/$DOMAIN/bench/new" -type f | head -1 | xargs grep -m2 -E '^(Received-SPF|Authentication-Results):' || true)
PF_REJECTED=$(grep -c ' reject: ' "$RUN/postfix/maillog" || true)

python3 - "$RUN/results" "$FIRST" "$ROUNDS" "$MESSAGES" "$SESSIONS" "$PC_STORED" "$PF_STORED" <<'EOF'
import statistics, sys
results, first, rounds, messages, sessions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
stored = {"portcullis": int(sys.argv[6] or 0), "postfix": int(sys.argv[7] or 0)}
sides = ("portcullis", "postfix")
secs = {s: [float(open(f"{results}/{s}.{r}").read()) for r in range(first, rounds + 1)] for s in sides}
row = "{:<7} {:<11} {:>9} {:>14}"
print(row.format("round", "server", "msgs/s", "mean ms/msg"))
for i, r in enumerate(range(first, rounds + 1)):
    for s in sides:
        t = secs[s][i]
        # smtp-source keeps `sessions` transactions in flight: each took sessions x t / messages.
        print(row.format(r or "warm-up", s, f"{messages / t:.1f}", f"{1000 * sessions * t / messages:.2f}"))
measured = {s: secs[s][1 - first:] for s in sides}
rate = {s: statistics.median(messages / t for t in measured[s]) for s in sides}
lat = {s: statistics.median(1000 * sessions * t / messages for t in measured[s]) for s in sides}
print()
for s in sides:
    print(row.format("median", s, f"{rate[s]:.1f}", f"{lat[s]:.2f}"))
ratios = [b / a for a, b in zip(measured["portcullis"], measured["postfix"])]
print(f"\nratio Portcullis/Postfix: {rate['portcullis'] / rate['postfix']:.2f}x of the medians"
      f" (per round: {', '.join(f'{q:.2f}x' for q in ratios)}); target at least 2x")
total = messages * (rounds - first + 1)
ok = True
for s in sides:
    verdict = "all there" if stored[s] == total else "MISMATCH"
    print(f"stored {s}: {stored[s]} of the {total} messages sent: {verdict}")
    ok = ok and stored[s] == total
sys.exit(0 if ok else 1)
EOF
status=$?
echo
echo "Portcullis's verdict on the first message: $PC_SAMPLE"
echo "Postfix's fields on a delivered message:"
echo "$PF_SAMPLE"
echo "Postfix rejections logged: $PF_REJECTED"
exit $status
