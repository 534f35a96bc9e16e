#!/usr/bin/env bash
# SCEP enrollments: PKCSReq (RFC 8894) against fleetpki's `scep` role (a static challenge) and
# micromdm's `scepserver` (Debian `scep`, its own file-depot CA, the same challenge), with the
# same load: RSA-2048 client keys and one fresh CSR, transactionID and nonce per request, all
# built before timing (`loadgen scep`, fleetpki-x509's client side), AES-128-CBC, keep-alive
# POSTs at a fixed concurrency, a fixed count per run, rounds interleaved. Every answer is
# checked after the run: the RA's signature, the nonce echo, SUCCESS and a certificate for the
# request's key; anything else counts as an error.
#
# scepserver binds every interface, so the runs (both servers and the load generator) happen
# inside a network namespace of their own (`unshare -n`, or `unshare -rn` when not root) with
# only loopback up.
#
#   bench/scep.sh   # env: CONCURRENCY (16), REQUESTS (4000), WARMUP_REQUESTS (100),
#                   #      ROUNDS (2), KEYS (32), SEQ_REQUESTS (300)
#
# Prints requests/s, p50/p99 and errors for each, and fleetpki/scepserver (target ≥ 10×);
# then the same with one client at a time (SEQ_REQUESTS each, no target).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONCURRENCY="${CONCURRENCY:-16}"
REQUESTS="${REQUESTS:-4000}"
SEQ_REQUESTS="${SEQ_REQUESTS:-300}"
WARMUP_REQUESTS="${WARMUP_REQUESTS:-100}"
KEYS="${KEYS:-32}"
CHALLENGE="bench-Secret-1"

if [ -z "${SCEP_BENCH_NETNS:-}" ]; then
    apt_need openssl:openssl scepserver:scep ip:iproute2 unshare:util-linux curl:curl sqlite3:sqlite3
    build
    ns=(unshare -n)
    [ "$(id -u)" -eq 0 ] || ns=(unshare -rn)
    log "into a network namespace of its own (${ns[*]}), loopback only…"
    rc=0
    "${ns[@]}" env SCEP_BENCH_NETNS=1 LOAD_AT_START="$LOAD_AT_START" bash "$0" "$@" || rc=$?
    exit "$rc"
fi
ip link set lo up || die "cannot bring loopback up in the namespace"

# ---------------------------------------------------------------- fleetpki
base_port="$(free_port)"
mkdir -p "$SITE"
{
    fp init --site-code PS1 --name "Bench" --two-tier --base-url "http://localhost:$base_port"
    fp directory add-group Servers
    fp directory add-computer SRV1 --dns srv1.fleet.test --group Servers
    fp template duplicate WebServer "SCEP Device"
    fp template set "SCEP Device" --permitted-dns-suffixes fleet.test --key-algorithms rsa:2048-4096
    fp template grant "SCEP Device" --group Servers --enroll
    fp template publish "SCEP Device"
} >"$TMP/site-setup.log" 2>&1 || { cat "$TMP/site-setup.log" >&2; die "site setup failed"; }
challenge_sha256="$(printf '%s' "$CHALLENGE" | sha256sum | cut -d' ' -f1)"
SERVE_EXTRA="[roles.scep.endpoints.bench]
template = \"SCEP Device\"
principal = \"SRV1\"
challenge_sha256 = \"$challenge_sha256\""
start_fleetpki scep
# shellcheck disable=SC2154 # set by start_fleetpki
fp_url="$URL_scep/scep/bench"
log "fleetpki scep at $fp_url"
[ -s "$SITE/ca/scep-ra.pem" ] || die "fleetpki wrote no RA certificate ($SITE/ca/scep-ra.pem)"

# ---------------------------------------------------------------- scepserver
# Its own CA (RSA 2048 like fleetpki's RA key, instead of the default 4096), file depot.
mkdir -p "$TMP/scepserver"
(cd "$TMP/scepserver" && scepserver ca -init -keySize 2048 -depot depot) \
    >"$TMP/scepserver-init.log" 2>&1 || { cat "$TMP/scepserver-init.log" >&2; die "scepserver ca -init failed"; }
ss_port="$(free_port)"
(cd "$TMP/scepserver" && exec scepserver -depot depot -port "$ss_port" -challenge "$CHALLENGE") \
    >"$TMP/scepserver.log" 2>&1 &
PIDS+=("$!")
wait_port "$ss_port" scepserver
ss_url="http://127.0.0.1:$ss_port/scep"
log "scepserver at $ss_url ($(grep -c . <<<"$(curl -s "$ss_url?operation=GetCACaps" 2>/dev/null || true)") capabilities)"

# ---------------------------------------------------------------- the runs
load=(-c "$CONCURRENCY" --requests "$REQUESTS" --warmup-requests "$WARMUP_REQUESTS"
    --keys "$KEYS" --challenge "$CHALLENGE" --cipher aes128)
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    run_mode scep fleetpki "$fp_url" --ra "$SITE/ca/scep-ra.pem" "${load[@]}"
    run_mode scep scepserver "$ss_url" --ra "$TMP/scepserver/depot/ca.pem" "${load[@]}"
done
# One client at a time: latency without contention (and without scepserver's depot race).
seq=(-c 1 --requests "$SEQ_REQUESTS" --warmup-requests 10 --keys 4 --challenge "$CHALLENGE"
    --cipher aes128)
log "one client at a time ($SEQ_REQUESTS each)"
run_mode scep fleetpki-c1 "$fp_url" --ra "$SITE/ca/scep-ra.pem" "${seq[@]}"
run_mode scep scepserver-c1 "$ss_url" --ra "$TMP/scepserver/depot/ca.pem" "${seq[@]}"
issued="$(sqlite3 "$SITE/fleetpki.db" 'SELECT COUNT(*) FROM certificates' 2>/dev/null || echo '?')"
ss_issued="$(grep -c '^V' "$TMP/scepserver/depot/index.txt" 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- summary
# key_of CERT.pem: e.g. "rsaEncryption (2048 bit)" or "id-ecPublicKey (256 bit) prime256v1".
key_of() {
    openssl x509 -in "$1" -noout -text | awk '
        /Public Key Algorithm:/ && !a { sub(/.*: /, ""); a = $0 }
        /Public-Key:/ && !b { sub(/.*Public-Key: /, ""); b = $0 }
        /ASN1 OID:/ && !c { sub(/.*: /, ""); c = " " $0 }
        END { print a " " b c }'
}
fp_rps="$(field fleetpki rps)"
r="$(ratio "$fp_rps" "$(field scepserver rps)")"
r1="$(ratio "$(field fleetpki-c1 rps)" "$(field scepserver-c1 rps)")"
cat <<EOF

=== bench/scep.sh: SCEP PKCSReq enrollments, RSA-2048 clients, AES-128-CBC, keep-alive, c=$CONCURRENCY
  fleetpki: [roles.scep.endpoints.bench], static challenge, template "SCEP Device"; RA key
  $(key_of "$SITE/ca/scep-ra.pem"), issuing CA key $(key_of "$SITE/ca/issuing.pem"); $issued certificates in its inventory
  scepserver (micromdm, Debian scep $(dpkg-query -W -f '${Version}' scep 2>/dev/null || echo '?')): file depot, RSA-2048 CA; $ss_issued certificates in its index.txt
$(summary_line fleetpki)
$(summary_line scepserver)
  fleetpki / scepserver   = ${r}×   (target ≥ 10×: $(verdict "$r" ge 10))
  errors (not a SUCCESS CertRep with a certificate for the request's key): fleetpki $(field fleetpki errors), scepserver $(field scepserver errors)
  one client at a time, $SEQ_REQUESTS enrollments each:
$(summary_line fleetpki-c1)
$(summary_line scepserver-c1)
  fleetpki-c1 / scepserver-c1 = ${r1}×
  $ROUNDS rounds of $REQUESTS measured enrollments per target (after $WARMUP_REQUESTS unmeasured), interleaved;
  p50 = mean of the rounds, p99 = worst round
  machine: $(nproc) CPUs shared with the load generator (and, today, with other users: load
  average $LOAD_AT_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at the end), so absolute figures are noisy;
  the ratio compares targets measured seconds apart in this same run
EOF
