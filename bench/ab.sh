#!/usr/bin/env bash
# Before/after: two fleetpki binaries serving the same site side by side, under the same loads,
# in interleaved rounds (A, B, A, B…), so a change is judged by a ratio measured in one run.
#
#   bench/ab.sh OLD_FLEETPKI NEW_FLEETPKI [LOAD...]
#   LOAD: mp-handshake, mp-keepalive, enroll (default: all three)
#   e.g. cp target/release/fleetpki /tmp/fleetpki-old; (change, rebuild);
#        bench/ab.sh /tmp/fleetpki-old target/release/fleetpki
#   env: CONCURRENCY (64), DURATION (8), WARMUP (2), ROUNDS (3)
#
# The site is set up with NEW; both binaries must read the same site format.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$#" -ge 2 ] || die "usage: bench/ab.sh OLD_FLEETPKI NEW_FLEETPKI [mp-handshake|mp-keepalive|enroll...]"
OLD="$(realpath "$1")"
NEW="$(realpath "$2")"
shift 2
LOADS=("$@")
[ "${#LOADS[@]}" -gt 0 ] || LOADS=(mp-handshake mp-keepalive enroll)
CONCURRENCY="${CONCURRENCY:-64}"
DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-3}"
BODIES="${BODIES:-40000}"
[ -x "$OLD" ] && [ -x "$NEW" ] || die "$OLD and $NEW must be executables"

apt_need openssl:openssl
# Only the load generator: the binaries under test are given.
cargo build --release --quiet --manifest-path "$BENCH_DIR/loadgen/Cargo.toml" ||
    die "building bench/loadgen failed"

FLEETPKI="$NEW"
make_site
FLEETPKI="$OLD"
start_fleetpki api management-point
# shellcheck disable=SC2154 # set by start_fleetpki
old_api="$URL_api" old_mp="$URL_management_point"
FLEETPKI="$NEW"
start_fleetpki api management-point
new_api="$URL_api" new_mp="$URL_management_point"
client=(--cacert "$SITE/ca/root.pem" --cert "$TMP/pc1-chain.pem" --key "$TMP/pc1.key")
common=(-c "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" "${client[@]}")

# load NAME WHICH URL_API URL_MP ROUND
load() {
    local name="$1" which="$2" api="$3" mp="$4" round="$5" bodies
    case "$name" in
    mp-handshake) run_load "$which-$name" "$mp/mp/policy" --mode handshake "${common[@]}" ;;
    mp-keepalive) run_load "$which-$name" "$mp/mp/policy" --mode keepalive "${common[@]}" ;;
    enroll)
        bodies="$TMP/enroll-$which-$round.jsonl"
        "$LOADGEN" csr --count "$BODIES" --out "$bodies" \
            --body '{"template":"Workstation","csr":"{csr}"}' 2>/dev/null
        run_load "$which-$name" "$api/api/v1/enroll" --mode keepalive "${common[@]}" \
            --bodies "$bodies" --expect-status 201
        rm -f "$bodies"
        ;;
    *) die "unknown load $name" ;;
    esac
}

for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for name in "${LOADS[@]}"; do
        # Alternate which side goes first, so neither always runs on a warmer machine.
        if [ $((round % 2)) -eq 1 ]; then
            load "$name" old "$old_api" "$old_mp" "$round"
            load "$name" new "$new_api" "$new_mp" "$round"
        else
            load "$name" new "$new_api" "$new_mp" "$round"
            load "$name" old "$old_api" "$old_mp" "$round"
        fi
    done
done

printf '\n=== bench/ab.sh: OLD %s vs NEW %s, c=%s\n' "$OLD" "$NEW" "$CONCURRENCY"
for name in "${LOADS[@]}"; do
    summary_line "old-$name"
    summary_line "new-$name"
    printf '  %-20s new/old = %s×   errors %s\n' "$name" \
        "$(ratio "$(field "new-$name" rps)" "$(field "old-$name" rps)")" \
        "$(($(field "old-$name" errors) + $(field "new-$name" errors)))"
done
machine_note
