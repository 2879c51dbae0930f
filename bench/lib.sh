# Shared by the benchmark scripts, which source it: messages, the test certificate, the end of
# a run's temp dir.

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

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
