# Sourced by the target scripts that offer a TLS listener.
#
# write_certificate DIR: a fresh throwaway CA (DIR/ca.pem) and a P-256 server certificate it
# signed for 127.0.0.1 and localhost (DIR/cert.pem, key DIR/key.pem). The CA is apart from the
# server's certificate, as in production: verifiers refuse a CA certificate used as the
# server's own. pushbench trusts it with [tls] ca = "DIR/ca.pem".
write_certificate() {
    local dir=$1
    command -v openssl >/dev/null || {
        echo "openssl is not installed: apt-get install -y openssl" >&2
        return 1
    }
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/CN=pushbench test CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$dir/key.pem" -out "$dir/cert.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/cert.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -days 30 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
}
