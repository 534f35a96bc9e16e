#!/usr/bin/env bash
# ACME issuances per second with account reuse: each of CONCURRENCY workers has its own ACME
# account and an authorization validated once through real http-01 (not timed); one timed
# issuance is newOrder (ready at once) → finalize → certificate download, three JWS requests
# over HTTPS, 200 only after the certificate is committed. Baseline in the same run, rounds
# interleaved: the JSON API's POST /api/v1/enroll (one HTTPS request, client certificate).
#
#   bench/acme.sh   # env: CONCURRENCY (64), DURATION (8), WARMUP (2), ROUNDS (2)
#
# Prints acme issuances/s (target ≥ 1,000/s on 2 cores) and acme/api-enroll.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONCURRENCY="${CONCURRENCY:-64}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"
BODIES="${BODIES:-50000}"

apt_need openssl:openssl
build
make_site
{
    fp template duplicate WebServer "ACME Web"
    fp template set "ACME Web" --permitted-dns-suffixes fleet.test
    fp template grant "ACME Web" --group G --enroll
    fp template publish "ACME Web"
} >>"$TMP/site-setup.log" 2>&1 || { cat "$TMP/site-setup.log" >&2; die "template setup failed"; }
http01="$(free_port)"
SERVE_EXTRA="[roles.acme]
template = \"ACME Web\"
principal = \"PC1\"
http01_port = $http01
resolve = { \"*.fleet.test\" = \"127.0.0.1\" }"
start_fleetpki api acme
# shellcheck disable=SC2154 # set by start_fleetpki
log "fleetpki acme at $URL_acme, api at $URL_api"
acme_port="${URL_acme##*:}"
api_port="${URL_api##*:}"

log "generating P-256 CSRs for the API baseline (not timed)…"
for round in $(seq 1 "$ROUNDS"); do
    "$LOADGEN" csr --count "$BODIES" --out "$TMP/api-$round.jsonl" \
        --body '{"template":"Workstation","csr":"{csr}"}'
done

load=(-c "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP")
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    run_mode acme acme "$URL_acme/acme/directory" --connect "127.0.0.1:$acme_port" \
        --cacert "$SITE/ca/root.pem" --http01-port "$http01" "${load[@]}"
    run_load api-enroll "$URL_api/api/v1/enroll" --connect "127.0.0.1:$api_port" --mode keepalive \
        "${load[@]}" --bodies "$TMP/api-$round.jsonl" --expect-status 201 \
        --cacert "$SITE/ca/root.pem" --cert "$TMP/pc1-chain.pem" --key "$TMP/pc1.key"
done
issued="$(fp cert list --json | grep -c '"serial"' || true)"

acme_rps="$(field acme rps)"
r_api="$(ratio "$acme_rps" "$(field api-enroll rps)")"
cat <<EOF2

=== bench/acme.sh: ACME issuances with account reuse, P-256, keep-alive, c=$CONCURRENCY
  acme: newOrder + finalize + download (3 ES256 JWS requests, nonces chained), authorization
  reused; finalize answers after commit (SQLite WAL, synchronous=FULL, group commit, audit)
  api-enroll: POST /api/v1/enroll, one request, PC1's client certificate; $issued certificates issued
$(summary_line acme)
$(summary_line api-enroll)
  acme issuances/s        = ${acme_rps}   (target ≥ 1000 on 2 cores: $(verdict "$acme_rps" ge 1000))
  acme / api-enroll       = ${r_api}×   (one ACME issuance is three requests, the API's one)
  acme errors             = $(field acme errors)   (target 0: $(verdict "$(field acme errors)" le 0))
$(machine_note)
EOF2
