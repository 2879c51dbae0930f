# Shared by the benchmark scripts, which source it: messages, the run dir's filesystem, the test
# certificate, the end of a run's temp dir, and the start and stop of the processes several
# scripts run alike (a private dnsmasq, Portcullis, a private Postfix and its namespace keeper).

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# refuse_tmpfs DIR: dies when DIR is on a filesystem held in memory (tmpfs, ramfs). fsync costs
# nothing there, so a server that syncs every message would look as fast as one that does not,
# and the durable rates measured would not be those of a disk.
refuse_tmpfs() {
    local fstype
    fstype=$(stat -f -c %T "$1") || die "cannot tell the filesystem of $1 (RUN_BASE)"
    case $fstype in
        tmpfs | ramfs)
            die "$1 is on $fstype, where fsync is free: the benchmark would not measure durable writes. Set RUN_BASE to a directory on a disk, e.g. RUN_BASE=/var/tmp" ;;
    esac
}

# make_leaf_cert DIR NAME: DIR/cert.pem and DIR/key.pem, a self-signed ECDSA P-256 certificate
# for NAME, valid 2 days, the same for every server of a run so that the TLS work is the same.
# A leaf (CA:FALSE): webpki refuses a CA certificate as a server's own. The key is 0600: the
# servers read it at the start, before they drop root.
make_leaf_cert() {
    local dir=$1 name=$2
    mkdir -p "$dir"
    cat >"$dir/openssl.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = $name
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$name
CNF
    openssl req -x509 -config "$dir/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -days 2 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
    chmod 644 "$dir/cert.pem"
    chmod 600 "$dir/key.pem"
}

# keep_or_remove DIR: the last step of a cleanup; KEEP=1 leaves DIR (logs, configs, store) for
# inspection.
keep_or_remove() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $1" >&2
    else
        rm -rf "$1"
    fi
}

# dovecot_imaps_conf DIR HOMES PORT TLS_DIR PASSWD: DIR/dovecot.conf, the peer the IMAP
# benchmarks measure: a private Dovecot with its state in DIR, IMAPS only on 127.0.0.1:PORT,
# the run's certificate (TLS_DIR), Maildirs under HOMES/<user>, and the argon2id hashes
# Portcullis made in PASSWD. No auth cache (the default), so every LOGIN costs one hash, as in
# Portcullis. Everything else (fsync, caching, index, the login process model and limits,
# auth_failure_delay and the per-IP auth penalty) at Dovecot's defaults.
dovecot_imaps_conf() {
    local dir=$1 homes=$2 port=$3 tls=$4 passwd=$5
    mkdir -p "$dir"
    cat >"$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$tls/cert.pem
ssl_key = <$tls/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = scheme=ARGON2ID $passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$homes/%n
}
mail_location = maildir:~/Maildir
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $port
    ssl = yes
  }
}
CONF
}

# The services of a private Postfix's master.cf besides its smtpd listener, none chrooted (the
# queue dir is private to the run): what bench/submission.sh and bench/mx.sh both run.
postfix_services() {
    cat <<'SERVICES'
pickup     unix      n - n 60 1 pickup
cleanup    unix      n - n -  0 cleanup
qmgr       unix      n - n 300 1 qmgr
tlsmgr     unix      - - n 1000? 1 tlsmgr
rewrite    unix      - - n -  - trivial-rewrite
bounce     unix      - - n -  0 bounce
defer      unix      - - n -  0 bounce
trace      unix      - - n -  0 bounce
verify     unix      - - n -  1 verify
flush      unix      n - n 1000? 0 flush
proxymap   unix      - - n -  - proxymap
proxywrite unix      - - n -  1 proxymap
smtp       unix      - - n -  - smtp
relay      unix      - - n -  - smtp
showq      unix      n - n -  - showq
error      unix      - - n -  - error
retry      unix      - - n -  - error
discard    unix      - - n -  - discard
local      unix      - n n -  - local
virtual    unix      - n n -  - virtual
lmtp       unix      - - n -  - lmtp
anvil      unix      - - n -  1 anvil
scache     unix      - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
SERVICES
}

# --- Start-up shared by bench/outbound.sh, bench/mx.sh and bench/submission.sh -----------------
# They use the globals each script sets: RUN (the run's temp dir), BIN (the portcullis binary),
# PC (Portcullis's dir, holding portcullis.toml), PORTCULLIS_PID, DNS_PID, NS_PID, POSTFIX_ETC.

# start_dnsmasq ADDR: a private dnsmasq on ADDR:53, authoritative for *.bench, answering the
# records read from stdin (dnsmasq.conf lines: mx-host=, host-record=, txt-record=); sets DNS_PID
# (so call it in the script's own shell: a redirection, not a pipe) and writes RUN/resolv.conf,
# which points at it.
start_dnsmasq() {
    local addr=$1
    {
        echo "listen-address=$addr"
        echo "bind-interfaces"
        echo "port=53"
        echo "no-resolv"
        echo "no-hosts"
        echo "local=/bench/"
        cat
    } >"$RUN/dnsmasq.conf"
    dnsmasq --keep-in-foreground --conf-file="$RUN/dnsmasq.conf" --pid-file="$RUN/dnsmasq.pid" 2>"$RUN/dnsmasq.log" &
    DNS_PID=$!
    for _ in $(seq 50); do ss -Hlun "src = $addr" | grep -q ":53 " && break; sleep 0.1; done
    echo "nameserver $addr" >"$RUN/resolv.conf"
}

stop_dnsmasq() {
    if [ -n "${DNS_PID:-}" ]; then
        kill -TERM "$DNS_PID" 2>/dev/null && wait "$DNS_PID" 2>/dev/null
    fi
    DNS_PID=
}

# pc ARGS: the portcullis CLI on the run's config.
pc() { "$BIN" --config "$PC/portcullis.toml" "$@"; }

# pc_add_user DOMAIN USER PASSWORD: the domain and its account, without quota.
pc_add_user() {
    pc domain add "$1" >/dev/null
    echo "$3" | pc account add "$2" --password-stdin --quota unlimited >/dev/null
}

# launch_portcullis: `portcullis serve` in the background, its JSON log appended to
# PC/log.jsonl and its stderr to PC/stderr; sets PORTCULLIS_PID.
launch_portcullis() {
    "$BIN" --config "$PC/portcullis.toml" serve >>"$PC/log.jsonl" 2>>"$PC/stderr" &
    PORTCULLIS_PID=$!
}

# start_portcullis PORT: launch_portcullis, returning once it listens on PORT. Dies when it
# exits or does not listen within 15 s.
start_portcullis() {
    launch_portcullis
    for _ in $(seq 300); do
        ss -Hltn "sport = :$1" | grep -q . && return
        kill -0 "$PORTCULLIS_PID" 2>/dev/null || die "Portcullis exited: $(tail -3 "$PC/stderr")"
        sleep 0.05
    done
    die "Portcullis did not start listening on $1"
}

# stop_portcullis: SIGTERM (a graceful stop), and the wait for its exit.
stop_portcullis() {
    if [ -n "${PORTCULLIS_PID:-}" ] && kill -0 "$PORTCULLIS_PID" 2>/dev/null; then
        kill -TERM "$PORTCULLIS_PID"
        wait "$PORTCULLIS_PID" 2>/dev/null || true
    fi
    PORTCULLIS_PID=
}

# postfix_dirs: a private Postfix's directories under RUN/postfix (etc = POSTFIX_ETC, spool,
# lib, which the postfix user owns).
postfix_dirs() {
    mkdir -p "$POSTFIX_ETC" "$RUN/postfix/spool" "$RUN/postfix/lib"
    chown postfix "$RUN/postfix/lib"
}

# postfix_main_base HOSTNAME DOMAIN ADDR: the main.cf lines every private Postfix of the
# benchmarks shares: its own spool, data dir and log under RUN, no local delivery, IPv4 on ADDR.
postfix_main_base() {
    cat <<EOF
compatibility_level = 3.6
myhostname = $1
mydomain = $2
mydestination =
inet_interfaces = $3
inet_protocols = ipv4
queue_directory = $RUN/postfix/spool
data_directory = $RUN/postfix/lib
maillog_file = $RUN/postfix/maillog
maillog_file_prefixes = $RUN
biff = no
EOF
}

# start_keeper BEFORE AFTER: the keeper, a shell in a mount namespace where /etc/resolv.conf is
# RUN/resolv.conf (Postfix's smtp client and its milters read it; the machine's own is never
# touched). It runs the shell commands BEFORE, starts Postfix (POSTFIX_ETC), and when
# stop_keeper writes RUN/ns.stop, stops Postfix and runs AFTER. Sets NS_PID.
start_keeper() {
    unshare --mount --propagation private sh -c "
        mount --bind '$RUN/resolv.conf' /etc/resolv.conf || exit 1
        $1
        postfix -c '$POSTFIX_ETC' start >/dev/null 2>&1 || echo 'postfix did not start' >'$RUN/ns.failed'
        while [ ! -e '$RUN/ns.stop' ]; do sleep 0.2; done
        postfix -c '$POSTFIX_ETC' stop >/dev/null 2>&1
        $2
        sleep 1
    " &
    NS_PID=$!
}

# wait_keeper_postfix PORT: returns once the keeper's Postfix listens on PORT; dies if it did
# not start or does not listen within 10 s.
wait_keeper_postfix() {
    for _ in $(seq 100); do
        ss -Hltn "sport = :$1" | grep -q . && return
        [ -e "$RUN/ns.failed" ] && die "postfix did not start: $(tail -5 "$RUN/postfix/maillog" 2>/dev/null)"
        sleep 0.1
    done
    die "Postfix is not listening on $1"
}

# stop_keeper: asks the keeper to stop what it started, waits for it (15 s), then ends it.
stop_keeper() {
    if [ -n "${NS_PID:-}" ]; then
        echo stop >"$RUN/ns.stop"
        for _ in $(seq 150); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -TERM "$NS_PID" 2>/dev/null
    fi
    NS_PID=
}

# --- Helpers for scripts that run several servers at once (bench/postgres.sh) ------------------

# wait_listening PORT WHAT [PID]: returns once something listens on 127.0.0.1-side TCP PORT;
# dies after 30 s, or as soon as PID (the process that should listen) has exited.
wait_listening() {
    local port=$1 what=$2 pid=${3:-}
    for _ in $(seq 300); do
        ss -Hltn "sport = :$port" | grep -q . && return
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then die "$what exited before listening on $port"; fi
        sleep 0.1
    done
    die "$what is not listening on $port"
}

# json_field FILE KEY: one top-level field of a harness's JSON result.
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# tree_cpu_ticks PID: CPU time, in clock ticks (getconf CLK_TCK a second), of PID and every
# live descendant (the postmaster and its backends, checkpointer, WAL writer: the CPU of a
# whole PostgreSQL server): user and system time of all their threads, plus that of their
# children that have exited and been waited for (cutime, cstime: a backend that ends during a
# measurement still counts). /proc/PID/stat's second field (the name) may hold spaces: fields
# are counted after its last closing parenthesis (utime is field 14 of proc(5), the 12th after
# it). One pass over the files: forking per process would cost more than it measures.
tree_cpu_ticks() {
    # A process may end between `ps` and the read: cat skips its file.
    # shellcheck disable=SC2046 # one path a word
    cat $(printf '/proc/%s/stat ' "$1" $(descendants "$1")) 2>/dev/null |
        awk '{ sub(/.*\) /, ""); t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}

# descendants PID: the live descendants of PID, one a line (one `ps` for the whole tree).
descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (pid in parent) {
                for (p = parent[pid]; p != "" && p != 0 && p != pid; p = parent[p]) {
                    if (p == root) { print pid; break }
                }
            }
        }'
}
