#!/usr/bin/env bash
# Durable issuance over HTTP: fleetpki's POST /api/v1/enroll (HTTPS, PC1's client certificate,
# 201 = committed) against `cfssl serve` /api/v1/cfssl/sign without and with a SQLite certdb,
# each both in plain HTTP on loopback and in HTTPS requiring the same client certificate (the
# same transport as fleetpki's); P-256 CSRs generated before timing, keep-alive, same
# concurrency, rounds interleaved. Then the store's own group-commit measurement (grouped vs
# one transaction per row).
#
#   bench/issuance-http.sh  # env: CONCURRENCY (64), DURATION (8), WARMUP (2), ROUNDS (2)
#
# Prints fleetpki/cfssl-nodb and fleetpki/cfssl-db (targets ≥ 1.2× and ≥ 10×), errors (target
# 0), fleetpki's p99 (target ≤ 25 ms) and grouped/per-row rows/s (target ≥ 5×), the targets
# judged against plain-HTTP cfssl; the same ratios against cfssl over mutual TLS follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONCURRENCY="${CONCURRENCY:-64}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"
# CSRs per fleetpki round: enough for 10 s (warm-up and run) at 5,000+ issuances a second, none
# sent twice (at 50,000 a quiet machine ran out before the end of the run).
BODIES="${BODIES:-100000}"

apt_need openssl:openssl cfssl:golang-cfssl cfssljson:golang-cfssl sqlite3:sqlite3
build

# ---------------------------------------------------------------- fleetpki
make_site
make_web_cert
start_fleetpki api
# shellcheck disable=SC2154 # set by start_fleetpki
log "fleetpki api at $URL_api"
api_port="${URL_api##*:}"

log "generating P-256 CSRs (not timed)…"
for round in $(seq 1 "$ROUNDS"); do
    "$LOADGEN" csr --count "$BODIES" --out "$TMP/fleetpki-$round.jsonl" \
        --body '{"template":"Workstation","csr":"{csr}"}'
done
"$LOADGEN" csr --count "$BODIES" --out "$TMP/cfssl.jsonl" --cn bench.fleet.test \
    --dns bench.fleet.test --body '{"certificate_request":"{csr}"}'

# ---------------------------------------------------------------- cfssl
mkdir -p "$TMP/cfssl"
cd "$TMP/cfssl"
cat >ca-csr.json <<'EOF'
{"CN": "Bench cfssl CA", "key": {"algo": "ecdsa", "size": 256}, "names": [{"O": "bench"}]}
EOF
cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
cat >config.json <<'EOF'
{"signing": {"default": {"expiry": "8760h", "usages": ["digital signature", "client auth"]}}}
EOF
# cfssl's certdb schema (certdb/sqlite/migrations in cfssl's source; the Debian package does
# not ship it): the two tables its SQL accessor uses.
sqlite3 certs.db <<'EOF'
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY (serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY (serial_number, authority_key_identifier),
  FOREIGN KEY (serial_number, authority_key_identifier)
    REFERENCES certificates (serial_number, authority_key_identifier)
);
EOF
printf '{"driver": "sqlite3", "data_source": "%s"}\n' "$TMP/cfssl/certs.db" >db.json
# The mutual-TLS instance with a certdb gets its own (empty) copy.
cp certs.db certs-mtls.db
printf '{"driver": "sqlite3", "data_source": "%s"}\n' "$TMP/cfssl/certs-mtls.db" >db-mtls.json

# cfssl_start VAR [serve flags...]: starts `cfssl serve`, sets VAR to its port.
cfssl_start() {
    local var="$1" port
    shift
    port="$(free_port)"
    cfssl serve -address 127.0.0.1 -port "$port" -ca ca.pem -ca-key ca-key.pem \
        -config config.json -loglevel 2 "$@" >"$TMP/cfssl-$var.log" 2>&1 &
    PIDS+=("$!")
    wait_port "$port" "cfssl serve"
    printf -v "$var" '%s' "$port"
}
nodb_port="" db_port="" mtls_nodb_port="" mtls_db_port=""
cfssl_start nodb_port
cfssl_start db_port -db-config db.json
# HTTPS with the site's server certificate, requiring a client certificate from the site's CAs
# (Go's TLS verifies the chain; it checks no CRL, where fleetpki does).
mtls=(-tls-cert "$TMP/web-chain.pem" -tls-key "$TMP/web.key" -mutual-tls-ca "$TMP/cas.pem")
cfssl_start mtls_nodb_port "${mtls[@]}"
cfssl_start mtls_db_port "${mtls[@]}" -db-config db-mtls.json
cd "$REPO"

# ---------------------------------------------------------------- the runs
load=(--mode keepalive -c "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP")
cfssl_load=("${load[@]}" --bodies "$TMP/cfssl.jsonl" --cycle-bodies --expect-status 200)
client=(--cacert "$SITE/ca/root.pem" --cert "$TMP/pc1-chain.pem" --key "$TMP/pc1.key")
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    run_load fleetpki "$URL_api/api/v1/enroll" --connect "127.0.0.1:$api_port" "${load[@]}" \
        --bodies "$TMP/fleetpki-$round.jsonl" --expect-status 201 "${client[@]}"
    run_load cfssl-nodb "http://127.0.0.1:$nodb_port/api/v1/cfssl/sign" "${cfssl_load[@]}"
    run_load cfssl-db "http://127.0.0.1:$db_port/api/v1/cfssl/sign" "${cfssl_load[@]}"
    run_load cfssl-nodb-mtls "https://benchweb.fleet.test:$mtls_nodb_port/api/v1/cfssl/sign" \
        --connect "127.0.0.1:$mtls_nodb_port" "${cfssl_load[@]}" "${client[@]}"
    run_load cfssl-db-mtls "https://benchweb.fleet.test:$mtls_db_port/api/v1/cfssl/sign" \
        --connect "127.0.0.1:$mtls_db_port" "${cfssl_load[@]}" "${client[@]}"
done
stored="$(sqlite3 "$TMP/cfssl/certs.db" 'SELECT COUNT(*) FROM certificates')"
stored_mtls="$(sqlite3 "$TMP/cfssl/certs-mtls.db" 'SELECT COUNT(*) FROM certificates')"
issued="$(sqlite3 "$SITE/fleetpki.db" 'SELECT COUNT(*) FROM certificates')"

# ---------------------------------------------------------------- group commit
log "cargo test -p fleetpki-store --release --test throughput -- --ignored --nocapture…"
gc_out="$(cargo test --quiet -p fleetpki-store --release --test throughput -- --ignored \
    --nocapture 2>&1)" || { printf '%s\n' "$gc_out" >&2; die "the group-commit test failed"; }
gc_line="$(grep '^SQLite: ' <<<"$gc_out" | tail -n1)"
printf '%s\n' "$gc_line" >&2
# "SQLite: one transaction per row: S rows/s sequential, P rows/s with 64 callers;
#  GroupCommitter with 64 callers: G rows/s"
gc_seq="$(sed -n 's/.*per row: \([0-9.]*\) rows\/s sequential.*/\1/p' <<<"$gc_line")"
gc_row="$(sed -n 's/.*sequential, \([0-9.]*\) rows\/s with.*/\1/p' <<<"$gc_line")"
gc_grp="$(sed -n 's/.*GroupCommitter with [0-9]* callers: \([0-9.]*\) rows\/s.*/\1/p' <<<"$gc_line")"
[ -n "$gc_grp" ] && [ -n "$gc_row" ] || die "cannot read the group-commit figures from: $gc_line"

# ---------------------------------------------------------------- summary
fp_rps="$(field fleetpki rps)"
r_nodb="$(ratio "$fp_rps" "$(field cfssl-nodb rps)")"
r_db="$(ratio "$fp_rps" "$(field cfssl-db rps)")"
r_nodb_mtls="$(ratio "$fp_rps" "$(field cfssl-nodb-mtls rps)")"
r_db_mtls="$(ratio "$fp_rps" "$(field cfssl-db-mtls rps)")"
r_gc="$(ratio "$gc_grp" "$gc_row")"
errors="$(field fleetpki errors)"
p99="$(field fleetpki p99_ms)"
# Why cfssl refused requests, if it did (e.g. its certdb's SQLite write lock waited out).
cfssl_failures="$(cat "$TMP"/cfssl-*_port.log | sed -n 's/.*failed to sign request: //p' |
    sort | uniq -c | sort -rn | head -n3 | sed 's/^ */    /')"
cat <<EOF

=== bench/issuance-http.sh: durable issuance over HTTP, P-256 CSRs, keep-alive, c=$CONCURRENCY
  fleetpki: POST /api/v1/enroll, HTTPS with PC1's client certificate; 201 = committed (SQLite
  WAL, synchronous=FULL, group commit, hash-chained audit); $issued certificates in its inventory
  cfssl $(cfssl version | sed -n 's/^Version: //p'): POST /api/v1/cfssl/sign, plain HTTP or (-mtls) HTTPS
  requiring PC1's client certificate; certdb (SQLite) rows: $stored, $stored_mtls (-mtls)
$(summary_line fleetpki)
$(summary_line cfssl-nodb)
$(summary_line cfssl-db)
$(summary_line cfssl-nodb-mtls)
$(summary_line cfssl-db-mtls)
  fleetpki / cfssl-nodb   = ${r_nodb}×   (target ≥ 1.2×: $(verdict "$r_nodb" ge 1.2))
  fleetpki / cfssl-db     = ${r_db}×   (target ≥ 10×: $(verdict "$r_db" ge 10))
  the same transport on both sides (cfssl over mutual TLS), for reference:
  fleetpki / cfssl-nodb-mtls = ${r_nodb_mtls}×   fleetpki / cfssl-db-mtls = ${r_db_mtls}×
  fleetpki errors         = $errors     (target 0: $(verdict "$errors" le 0))
  cfssl errors            = $(field cfssl-nodb errors) without certdb, $(field cfssl-db errors) with, $(field cfssl-nodb-mtls errors) and $(field cfssl-db-mtls errors) over mutual TLS${cfssl_failures:+; cfssl logged:
$cfssl_failures}
  fleetpki p99            = ${p99} ms   (target ≤ 25 ms: $(verdict "$p99" le 25))
  store group commit, SQLite, 64 callers (crates/store/tests/throughput.rs):
    GroupCommitter ${gc_grp} rows/s; one transaction per row ${gc_row} rows/s (${gc_seq} rows/s sequential)
  grouped / per-row       = ${r_gc}×   (target ≥ 5×: $(verdict "$r_gc" ge 5))
$(machine_note)
EOF
