#!/usr/bin/env bash
# Fleet jitter: `fleetpki simulate` with AGENTS (10,000) in-process agents whose certificates
# all fall due in the same hour, against a real site server on loopback, in virtual time; once
# with the policy's jitter window and once without (the named baseline). Prints each run's
# total requests, renewals, errors, mean and peak requests per minute over the renewal window,
# peak:mean, and the baseline's peak over the jittered run's.
#
#   bench/fleet-jitter.sh    # env: AGENTS (10000), CONCURRENCY (32), SEED (1), JITTER (policy's)
#
# KEEP_TMP=1 keeps the sites and agent directories (two × AGENTS agent stores); SIM_DIR puts
# them elsewhere than /dev/shm.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AGENTS="${AGENTS:-10000}"
CONCURRENCY="${CONCURRENCY:-32}"
SEED="${SEED:-1}"

log "cargo build --release -p fleetpki (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)…"
(cd "$REPO" && cargo build --release --quiet -p fleetpki) || die "building fleetpki failed"

# The sites and agent stores (2 × AGENTS directories of ~25 files) go on tmpfs when there is
# one: on a disk mounted with `discard`, deleting half a million files outlasts the run itself.
parent="${SIM_DIR:-/dev/shm}"
{ [ -d "$parent" ] && [ -w "$parent" ]; } || parent="$TMP"
WORK="$(mktemp -d "$parent/fleetpki-fleet-jitter.XXXXXX")"
# shellcheck disable=SC2154 # rc is set in the trap itself
trap 'rc=$?; if [ -n "${KEEP_TMP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi; (exit "$rc"); cleanup' EXIT

args=(simulate --agents "$AGENTS" --concurrency "$CONCURRENCY" --seed "$SEED"
    --work-dir "$WORK/sim")
[ -n "${JITTER:-}" ] && args+=(--jitter-secs "$JITTER")

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "fleetpki ${args[*]}"
start=$(date +%s)
rc=0
"$FLEETPKI" "${args[@]}" || rc=$?
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"
[ "$rc" -eq 0 ] || die "not every agent renewed (exit $rc): see the failures above"
