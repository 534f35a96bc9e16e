# Shared by the bench/ scripts (sourced, not run): installing tools, building, a throwaway
# fleetpki site, background processes cleaned up on exit, and printing ratios.
# shellcheck shell=bash

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
FLEETPKI="$CARGO_TARGET_DIR/release/fleetpki"
LOADGEN="$CARGO_TARGET_DIR/release/loadgen"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# apt_need CMD:PACKAGE... installs the packages whose command is missing.
apt_need() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${missing[*]} (apt)…"
    # Debian starts a package's service on install unless policy-rc.d says no; the benches
    # start their own instances, on loopback, and nothing else.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# Release builds of fleetpki and the load generator (its own workspace: bench/loadgen).
build() {
    log "cargo build --release -p fleetpki; loadgen (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)…"
    (cd "$REPO" && cargo build --release --quiet -p fleetpki) || die "building fleetpki failed"
    cargo build --release --quiet --manifest-path "$BENCH_DIR/loadgen/Cargo.toml" ||
        die "building bench/loadgen failed"
}

# ---------------------------------------------------------------- processes and cleanup
TMP="$(mktemp -d "${TMPDIR:-/tmp}/fleetpki-bench.XXXXXX")"
PIDS=()
# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${KEEP_TMP:-}" ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bg LOGFILE CMD...: starts CMD in the background (stdout and stderr to LOGFILE), remembers it.
bg() {
    local out="$1"
    shift
    "$@" >"$out" 2>&1 &
    PIDS+=("$!")
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A loopback port nobody listens on now.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        port_busy "$p" || { echo "$p"; return 0; }
    done
    die "no free port"
}

# wait_port PORT [WHAT]: until something accepts on 127.0.0.1:PORT (15 s).
wait_port() {
    for _ in $(seq 1 150); do
        port_busy "$1" && return 0
        sleep 0.1
    done
    die "${2:-a server} did not start listening on 127.0.0.1:$1"
}

# ---------------------------------------------------------------- a fleetpki site
SITE="$TMP/site"
fp() { "$FLEETPKI" --dir "$SITE" "$@"; }

# make_site: PS1 with two tiers, computer PC1 in group G, Workstation published for G, and
# PC1's certificate ($TMP/pc1.pem, key $TMP/pc1.key, with the issuing CA: $TMP/pc1-chain.pem).
make_site() {
    local base_port
    base_port="$(free_port)"
    mkdir -p "$SITE"
    {
        fp init --site-code PS1 --name "Bench" --two-tier --base-url "http://localhost:$base_port"
        fp directory add-group G
        fp directory add-computer PC1 --dns pc1.fleet.test --group G
        fp template grant Workstation --group G --enroll --autoenroll
        fp template publish Workstation
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$TMP/pc1.key" -subj /CN=pc1.fleet.test -out "$TMP/pc1.csr"
        fp request submit --template Workstation --as PC1 --csr "$TMP/pc1.csr" --out "$TMP/pc1.pem"
    } >"$TMP/site-setup.log" 2>&1 || { cat "$TMP/site-setup.log" >&2; die "site setup failed"; }
    cat "$TMP/pc1.pem" "$SITE/ca/issuing.pem" >"$TMP/pc1-chain.pem"
}

# make_web_cert (after make_site): a server certificate from the same site for the baselines,
# P-256 like fleetpki's own: $TMP/web.key, $TMP/web.pem, with the issuing CA $TMP/web-chain.pem,
# and the site's CAs in $TMP/cas.pem. The CA issues only fully qualified names, so a baseline
# is reached as benchweb.fleet.test (the load generator connects to 127.0.0.1 and verifies it).
make_web_cert() {
    {
        fp directory add-group BenchServers
        fp directory add-computer BENCHWEB --dns benchweb.fleet.test --group BenchServers
        fp template duplicate WebServer BenchWeb
        fp template grant BenchWeb --group BenchServers --enroll
        fp template publish BenchWeb
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$TMP/web.key" -subj /CN=benchweb.fleet.test \
            -addext subjectAltName=DNS:benchweb.fleet.test -out "$TMP/web.csr"
        fp request submit --template BenchWeb --as BENCHWEB --csr "$TMP/web.csr" --out "$TMP/web.pem"
    } >>"$TMP/site-setup.log" 2>&1 || { cat "$TMP/site-setup.log" >&2; die "baseline certificate setup failed"; }
    cat "$TMP/web.pem" "$SITE/ca/issuing.pem" >"$TMP/web-chain.pem"
    cat "$SITE/ca/root.pem" "$SITE/ca/issuing.pem" >"$TMP/cas.pem"
}

# start_fleetpki ROLE...: `$FLEETPKI serve` with only these roles (the others disabled; an
# opt-in role such as acme also needs its table in SERVE_EXTRA); sets
# URL_<role> for each (dashes as underscores), e.g. URL_api, URL_management_point, and
# FLEETPKI_PID. Its output goes to $TMP/serve-N.{out,err}.
SERVES=0
start_fleetpki() {
    local n conf role r
    SERVES=$((SERVES + 1))
    n="$TMP/serve-$SERVES"
    conf="$n.toml"
    : >"$conf"
    for role in api crl ocsp fallback-status-point management-point; do
        [[ " $* " == *" $role "* ]] || printf '[roles.%s]\nenabled = false\n' "$role" >>"$conf"
    done
    # Opt-in roles (acme) need their own table: SERVE_EXTRA is appended as given.
    [ -z "${SERVE_EXTRA:-}" ] || printf '%s\n' "$SERVE_EXTRA" >>"$conf"
    "$FLEETPKI" --dir "$SITE" serve --config "$conf" >"$n.out" 2>"$n.err" &
    PIDS+=("$!")
    FLEETPKI_PID=$!
    for _ in $(seq 1 300); do
        local all=1
        for role in "$@"; do grep -q "^$role listening on " "$n.out" || all=""; done
        [ -n "$all" ] && break
        kill -0 "$FLEETPKI_PID" 2>/dev/null || { cat "$n.err" >&2; die "fleetpki serve exited"; }
        sleep 0.1
    done
    for role in "$@"; do
        r="$(sed -n "s/^$role listening on //p" "$n.out")"
        [ -n "$r" ] || { cat "$n.err" >&2; die "fleetpki serve: no $role URL"; }
        # The server certificate names localhost (the base URL's host): connect by that name.
        printf -v "URL_${role//-/_}" '%s' "${r/127.0.0.1/localhost}"
    done
}

# ---------------------------------------------------------------- results
RESULTS="$TMP/results.txt"
: >"$RESULTS"
ROUNDS="${ROUNDS:-2}"

# run_mode MODE LABEL ARGS...: one `loadgen MODE` run (run, acme, scep; its output to stderr);
# its RESULT line is kept for `field`. Scripts call it once per round for every target,
# interleaved, so that the machine's noise falls on every side alike.
run_mode() {
    local mode="$1" label="$2" out
    shift 2
    out="$("$LOADGEN" "$mode" --label "$label" "$@")" ||
        { printf '%s\n' "$out" >&2; die "loadgen $mode ($label) failed"; }
    printf '%s\n' "$out" >&2
    grep '^RESULT ' <<<"$out" | tail -n1 >>"$RESULTS"
}

# run_load LABEL ARGS...: `run_mode run`, the plain HTTP(S) load.
run_load() { run_mode run "$@"; }

# field LABEL KEY: over every round of LABEL: rps = all ok / all seconds, p50_ms = mean of the
# rounds, p99_ms and max_ms = the worst round, ok and errors = sums.
field() {
    awk -v l="$1" -v k="$2" '
        {
            delete f
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["label"] != l) next
            n++; ok += f["ok"]; secs += f["secs"]; err += f["errors"]; p50 += f["p50_ms"]
            if (f["p99_ms"] + 0 > p99) p99 = f["p99_ms"] + 0
            if (f["max_ms"] + 0 > mx) mx = f["max_ms"] + 0
        }
        END {
            if (!n) { print "?"; exit }
            if (k == "rps") printf "%.1f", ok / secs
            else if (k == "p50_ms") printf "%.2f", p50 / n
            else if (k == "p99_ms") printf "%.2f", p99
            else if (k == "max_ms") printf "%.2f", mx
            else if (k == "errors") print err
            else if (k == "ok") print ok
            else if (k == "rounds") print n
        }' "$RESULTS"
}

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }

# verdict VALUE OP TARGET: "met" or "MISSED" (OP: ge or le).
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        ok = (op == "ge") ? (v >= t) : (v <= t); print (ok ? "met" : "MISSED") }'
}

# summary_line LABEL: one row of the closing table.
summary_line() {
    printf '  %-20s %9s req/s   p50 %7s ms   p99 %7s ms   errors %s\n' "$1" \
        "$(field "$1" rps)" "$(field "$1" p50_ms)" "$(field "$1" p99_ms)" "$(field "$1" errors)"
}

machine_note() {
    printf '  %s rounds of %ss per target, interleaved; p50 = mean of the rounds, p99 = worst round\n' \
        "$ROUNDS" "$DURATION"
    printf '  machine: %s CPUs shared with the load generator (and, today, with other users: load\n' "$(nproc)"
    printf '  average %s at start, %s at the end), so absolute figures are noisy;\n' \
        "$LOAD_AT_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf '  the ratios compare targets measured seconds apart in this same run\n'
}
LOAD_AT_START="${LOAD_AT_START:-$(cut -d' ' -f1-3 /proc/loadavg)}"
