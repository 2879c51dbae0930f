# Shared by the benchmark scripts, which source it: messages, the run dir's filesystem, the test
# certificate, the end of a run's temp dir.

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
