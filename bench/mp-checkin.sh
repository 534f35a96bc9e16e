#!/usr/bin/env bash
# Management-point check-ins: GET /mp/policy with PC1's client certificate.
#  1. A full mutual-TLS handshake per request (new connection, no resumption) against fleetpki's
#     management point, `openssl s_server -Verify 1 -WWW` and nginx (`ssl_verify_client on`),
#     the baselines serving the very signed policy fleetpki returned, with the same server key
#     type and chain shape (a site-issued P-256 certificate), the same client-chain and CRL
#     checks (site root + issuing CA, both CRLs), the same load generator and concurrency.
#  2. Keep-alive GET /mp/policy: fleetpki against nginx keep-alive.
#
#   bench/mp-checkin.sh     # env: CONCURRENCY (64), DURATION (8), WARMUP (2), ROUNDS (2)
#
# Prints fleetpki/openssl (target ≥ 4×), fleetpki/nginx with handshakes (target ≥ 1×), and
# keep-alive requests/s (target ≥ 20,000/s on 2 cores) with fleetpki/nginx keep-alive.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONCURRENCY="${CONCURRENCY:-64}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"

apt_need openssl:openssl nginx:nginx curl:curl
build
make_site
make_web_cert
# Fresh CRLs of both CAs: fleetpki loads them at start, the baselines from these files.
{
    fp crl publish --issuer root --out "$TMP/root.crl.pem"
    fp crl publish --issuer issuing --out "$TMP/issuing.crl.pem"
} >>"$TMP/site-setup.log" 2>&1 || { cat "$TMP/site-setup.log" >&2; die "CRL publication failed"; }
cat "$TMP/root.crl.pem" "$TMP/issuing.crl.pem" >"$TMP/crls.pem"
# s_server's -CRL takes one CRL; its -CAfile loads every certificate and CRL in the file.
cat "$TMP/cas.pem" "$TMP/crls.pem" >"$TMP/cas-crls.pem"

start_fleetpki management-point
# shellcheck disable=SC2154 # set by start_fleetpki
MP="$URL_management_point"
log "fleetpki management point at $MP"
client=(--cacert "$SITE/ca/root.pem" --cert "$TMP/pc1-chain.pem" --key "$TMP/pc1.key")

# The signed policy PC1 gets: the baselines serve these bytes.
mkdir -p "$TMP/www"
mp_port="${MP##*:}"
curl -sfS --cacert "$SITE/ca/root.pem" --cert "$TMP/pc1-chain.pem" --key "$TMP/pc1.key" \
    --resolve "localhost:$mp_port:127.0.0.1" "$MP/mp/policy" -o "$TMP/www/policy.json" ||
    die "GET /mp/policy failed"
policy_bytes="$(stat -c %s "$TMP/www/policy.json")"
log "signed policy: $policy_bytes bytes"

# ---------------------------------------------------------------- openssl s_server
ossl_port="$(free_port)"
(cd "$TMP/www" && exec openssl s_server -accept "127.0.0.1:$ossl_port" -quiet -WWW \
    -cert "$TMP/web.pem" -key "$TMP/web.key" -cert_chain "$SITE/ca/issuing.pem" \
    -CAfile "$TMP/cas-crls.pem" -Verify 1 -verify_return_error -verify_quiet -crl_check_all) \
    >"$TMP/s_server.log" 2>&1 &
PIDS+=("$!")
wait_port "$ossl_port" "openssl s_server"

# ---------------------------------------------------------------- nginx
NG="$TMP/nginx"
mkdir -p "$NG/logs" "$NG/tmp"
cp "$TMP/web-chain.pem" "$TMP/web.key" "$TMP/cas.pem" "$TMP/crls.pem" "$TMP/www/policy.json" "$NG/"
nginx_port="$(free_port)"
cat >"$NG/nginx.conf" <<EOF
worker_processes $(nproc);
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 1024; }
http {
    # One log line per request, as fleetpki writes.
    access_log $NG/logs/access.log;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        server_name benchweb.fleet.test;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $NG/web-chain.pem;
        ssl_certificate_key $NG/web.key;
        ssl_client_certificate $NG/cas.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl $NG/crls.pem;
        location = /mp/policy {
            default_type application/json;
            alias $NG/policy.json;
        }
    }
}
EOF
if [ "$(id -u)" -eq 0 ]; then
    # Not as root: nginx runs as nobody, from its own prefix in the temp dir.
    chmod 711 "$TMP"
    chown -R nobody "$NG"
    # setpriv execs nginx itself (no runuser in between), so $! is nginx's master process.
    nginx_cmd=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups nginx)
else
    nginx_cmd=(nginx)
fi
"${nginx_cmd[@]}" -p "$NG" -c "$NG/nginx.conf" -e "$NG/logs/error.log" -g 'daemon off;' \
    >"$NG/logs/stdout.log" 2>&1 &
PIDS+=("$!")
wait_port "$nginx_port" nginx

# ---------------------------------------------------------------- the runs
hs=(--mode handshake -c "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" "${client[@]}")
ka=(--mode keepalive -c "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" "${client[@]}")
ossl=(--connect "127.0.0.1:$ossl_port")
ngx=(--connect "127.0.0.1:$nginx_port")
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    run_load fleetpki-handshake "$MP/mp/policy" "${hs[@]}"
    run_load openssl-handshake "https://benchweb.fleet.test:$ossl_port/policy.json" "${ossl[@]}" "${hs[@]}"
    run_load nginx-handshake "https://benchweb.fleet.test:$nginx_port/mp/policy" "${ngx[@]}" "${hs[@]}"
    run_load fleetpki-keepalive "$MP/mp/policy" "${ka[@]}"
    run_load nginx-keepalive "https://benchweb.fleet.test:$nginx_port/mp/policy" "${ngx[@]}" "${ka[@]}"
done

# ---------------------------------------------------------------- summary
fp_hs="$(field fleetpki-handshake rps)"
fp_ka="$(field fleetpki-keepalive rps)"
r_openssl="$(ratio "$fp_hs" "$(field openssl-handshake rps)")"
r_nginx="$(ratio "$fp_hs" "$(field nginx-handshake rps)")"
r_ka="$(ratio "$fp_ka" "$(field nginx-keepalive rps)")"
errors=0
for l in fleetpki-handshake openssl-handshake nginx-handshake fleetpki-keepalive nginx-keepalive; do
    errors=$((errors + $(field "$l" errors)))
done
cat <<EOF

=== bench/mp-checkin.sh: GET /mp/policy ($policy_bytes-byte signed policy), PC1's client certificate, c=$CONCURRENCY
  every handshake verifies the client chain (site root + issuing CA) and both CRLs
  full mutual-TLS handshake per request:
$(summary_line fleetpki-handshake)
$(summary_line openssl-handshake)
$(summary_line nginx-handshake)
  fleetpki / openssl s_server = ${r_openssl}×   (target ≥ 4×: $(verdict "$r_openssl" ge 4))
  fleetpki / nginx            = ${r_nginx}×   (target ≥ 1×: $(verdict "$r_nginx" ge 1))
  keep-alive:
$(summary_line fleetpki-keepalive)
$(summary_line nginx-keepalive)
  fleetpki keep-alive         = ${fp_ka} req/s (target ≥ 20000/s on 2 cores: $(verdict "$fp_ka" ge 20000))
  fleetpki / nginx keep-alive = ${r_ka}×
  errors (every run)          = $errors     (target 0: $(verdict "$errors" le 0))
$(machine_note)
EOF
