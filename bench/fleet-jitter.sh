#!/usr/bin/env bash
# Fleet jitter: `fleetpki simulate` with AGENTS (10,000) in-process agents whose certificates
# all fall due in the same hour, against a real site server on loopback, in virtual time; once
# with the policy's jitter window and once without (the named baseline). Prints each run's
# total requests, renewals, errors, mean and peak requests per minute over the renewal window,
# peak:mean, and the baseline's peak over the jittered run's.
#
#   bench/fleet-jitter.sh    # env: AGENTS (10000), CONCURRENCY (32), SEED (1), JITTER (policy's)
#
# KEEP_TMP=1 keeps the sites and agent directories (two × AGENTS agent stores) and the JSON.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AGENTS="${AGENTS:-10000}"
CONCURRENCY="${CONCURRENCY:-32}"
SEED="${SEED:-1}"

log "cargo build --release -p fleetpki (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)…"
(cd "$REPO" && cargo build --release --quiet -p fleetpki) || die "building fleetpki failed"

args=(simulate --agents "$AGENTS" --concurrency "$CONCURRENCY" --seed "$SEED"
    --work-dir "$TMP/sim")
[ -n "${JITTER:-}" ] && args+=(--jitter-secs "$JITTER")

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "fleetpki ${args[*]}"
start=$(date +%s)
rc=0
"$FLEETPKI" "${args[@]}" || rc=$?
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"
[ "$rc" -eq 0 ] || die "not every agent renewed (exit $rc): see the failures above"
