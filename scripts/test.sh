#!/usr/bin/env bash
# Runs fleetpki's whole test suite against the real third-party tools.
#
#   scripts/test.sh [extra args for `cargo nextest run --workspace`]
#   e.g. scripts/test.sh -p fleetpki-testkit
#
# 1. Installs what the tests need when it is missing (idempotent; a no-op when present):
#    apt: openssl, curl, ca-certificates, postgresql (server), certbot, lego, a JDK and
#    BouncyCastle (libbcprov-java libbcpkix-java libbcutil-java: the EST client); pip: pkilint,
#    openapi-spec-validator, cryptography (when python3 lacks it).
# 2. Starts a private, throwaway PostgreSQL cluster on 127.0.0.1 (port $FLEETPKI_PG_PORT,
#    default 55432, or the next free one), trust auth, and exports
#    FLEETPKI_TEST_POSTGRES_URL. If FLEETPKI_TEST_POSTGRES_URL is already set, that database
#    is used and no cluster is started.
# 3. Exports FLEETPKI_REQUIRE_TOOLS=1 (a missing tool fails a test instead of skipping it) and
#    runs `cargo nextest run --workspace "$@"` (or `cargo test --workspace "$@"` without
#    nextest), exiting with its status. The cluster is stopped and removed on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKILINT_SPEC="${FLEETPKI_PKILINT_SPEC:-pkilint==0.13.3}"
OPENAPI_VALIDATOR_SPEC="${FLEETPKI_OPENAPI_VALIDATOR_SPEC:-openapi-spec-validator==0.9.0}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------- apt packages
pg_bindir() {
    # Debian's versioned server binaries (not whatever pg_ctl is on PATH); the highest
    # major version wins (sorted numerically: glob order would put 10 before 9).
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && echo "$d"
    done | sort -t/ -k5,5n | tail -n1
}

apt_missing=()
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
command -v curl >/dev/null 2>&1 || apt_missing+=(curl)
[ -s /etc/ssl/certs/ca-certificates.crt ] || apt_missing+=(ca-certificates)
[ -n "$(pg_bindir)" ] || apt_missing+=(postgresql)
# ACME interop clients (crates/cli/tests/acme.rs).
command -v certbot >/dev/null 2>&1 || apt_missing+=(certbot)
command -v lego >/dev/null 2>&1 || apt_missing+=(lego)
if ! command -v python3 >/dev/null 2>&1; then
    apt_missing+=(python3 python3-venv python3-pip)
fi
# BouncyCastle's EST client, compiled and run by crates/cli/tests/est.rs.
command -v javac >/dev/null 2>&1 || apt_missing+=(openjdk-17-jdk-headless)
for jar in bcprov bcpkix bcutil; do
    [ -s "/usr/share/java/$jar.jar" ] || apt_missing+=("lib$jar-java")
done

if [ "${#apt_missing[@]}" -gt 0 ]; then
    log "installing ${apt_missing[*]} (apt)…"
    t0=$SECONDS
    if [[ " ${apt_missing[*]} " == *" postgresql "* ]]; then
        # Don't let the package create and start the system-wide "main" cluster on :5432.
        as_root mkdir -p /etc/postgresql-common/createcluster.d
        echo 'create_main_cluster = false' |
            as_root tee /etc/postgresql-common/createcluster.d/fleetpki-tests.conf >/dev/null
    fi
    apt_log="$(mktemp)"
    if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${apt_missing[@]}"; } >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        die "apt-get install ${apt_missing[*]} failed"
    fi
    rm -f "$apt_log"
    log "apt install took $((SECONDS - t0))s"
fi

PG_BIN="$(pg_bindir)"
[ -n "$PG_BIN" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"

# ---------------------------------------------------------------- pkilint, openapi-spec-validator (PyPI)
# Console scripts land in the interpreter's scripts dir (with pyenv: the version's bin, which
# the shims only reach after a rehash) or ~/.local/bin; put them on PATH directly.
VENV_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/fleetpki/pkilint-venv"
add_python_bins() {
    local d
    for d in "$VENV_DIR/bin" "$HOME/.local/bin" \
        "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"; do
        if [ -n "$d" ] && [ -d "$d" ] && [[ ":$PATH:" != *":$d:"* ]]; then
            PATH="$d:$PATH"
        fi
    done
    export PATH
}
add_python_bins

# pip_install SPEC: into python3, or a private venv where that python refuses (Debian).
pip_install() {
    local pip_flags pip_log
    pip_flags=(install --quiet --disable-pip-version-check --no-input "$1")
    pip_log="$(mktemp)"
    if python3 -m pip --version >/dev/null 2>&1 &&
        PIP_ROOT_USER_ACTION=ignore python3 -m pip "${pip_flags[@]}" >"$pip_log" 2>&1; then
        rm -f "$pip_log"
    else
        # E.g. an externally managed (Debian) python: use a private venv instead.
        log "pip install into $(command -v python3) failed ($(grep -m1 -o 'externally-managed-environment' "$pip_log" ||
            tail -n1 "$pip_log")); using a venv at $VENV_DIR"
        rm -f "$pip_log"
        if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                python3-venv python3-pip >/dev/null
        fi
        [ -x "$VENV_DIR/bin/python" ] || python3 -m venv "$VENV_DIR"
        "$VENV_DIR/bin/python" -m pip "${pip_flags[@]}"
    fi
    command -v pyenv >/dev/null 2>&1 && pyenv rehash >/dev/null 2>&1 || true
    hash -r
    add_python_bins
}

pkilint_ok() { command -v lint_pkix_cert >/dev/null 2>&1 && lint_pkix_cert --help >/dev/null 2>&1; }

if ! pkilint_ok; then
    log "installing pkilint ($PKILINT_SPEC)…"
    t0=$SECONDS
    pip_install "$PKILINT_SPEC"
    pkilint_ok || die "pkilint installed but lint_pkix_cert is not runnable from PATH ($PATH)"
    log "pkilint install took $((SECONDS - t0))s"
fi

# Validates the API role's /openapi.json (crates/cli/tests/api.rs).
validator_ok() {
    command -v openapi-spec-validator >/dev/null 2>&1 && openapi-spec-validator --help >/dev/null 2>&1
}

if ! validator_ok; then
    log "installing openapi-spec-validator ($OPENAPI_VALIDATOR_SPEC)…"
    t0=$SECONDS
    pip_install "$OPENAPI_VALIDATOR_SPEC"
    validator_ok || die "openapi-spec-validator installed but not runnable from PATH ($PATH)"
    log "openapi-spec-validator install took $((SECONDS - t0))s"
fi
# Python `cryptography` reads the agent's PKCS#12 exports (crates/agent/src/pkcs12/tests.rs).
# pkilint depends on it, so this is normally a no-op; it checks the python3 the tests run.
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
    log "installing cryptography (pip)…"
    pip_install cryptography
    python3 -c 'import cryptography' || die "python3 cannot import cryptography after installation"
fi
for t in openssl curl javac java lint_pkix_cert lint_pkix_signer_signee_cert_chain lint_crl lint_ocsp_response \
    openapi-spec-validator; do
    command -v "$t" >/dev/null 2>&1 || die "$t is not on PATH after installation"
done
pkilint_python="$(sed -n '1s/^#![[:space:]]*//p' "$(command -v lint_pkix_cert)")"
# shellcheck disable=SC2086 # the shebang may be "/usr/bin/env python3"
pkilint_version="$($pkilint_python -c 'import importlib.metadata as m; print(m.version("pkilint"))' 2>/dev/null ||
    echo '?')"
log "tools: $(openssl version | cut -d' ' -f1-2), pkilint $pkilint_version ($(command -v lint_pkix_cert))"

# ---------------------------------------------------------------- PostgreSQL
PG_TMP=""
PG_RUN=()
# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ]; then
        if [ -f "$PG_TMP/data/postmaster.pid" ]; then
            (cd "$PG_TMP" && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop \
                >/dev/null 2>&1) || true
        fi
        rm -rf "$PG_TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -n "${FLEETPKI_TEST_POSTGRES_URL:-}" ]; then
    log "using existing FLEETPKI_TEST_POSTGRES_URL (no private cluster)"
else
    PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/fleetpki-pg.XXXXXX")"
    mkdir "$PG_TMP/sock"
    if [ "$(id -u)" -eq 0 ]; then
        # initdb refuses to run as root: run the cluster as the `postgres` system user.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown -R postgres: "$PG_TMP"
        PG_RUN=(runuser -u postgres --)
    else
        PG_RUN=(env)
    fi

    (cd "$PG_TMP" && "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres \
        --auth=trust -E UTF8 --no-locale --no-sync >"$PG_TMP/initdb.log" 2>&1) ||
        { cat "$PG_TMP/initdb.log" >&2; die "initdb failed"; }

    port="${FLEETPKI_PG_PORT:-55432}"
    started=""
    for _ in $(seq 1 20); do
        while port_busy "$port"; do port=$((port + 1)); done
        rm -f "$PG_TMP/server.log"
        if (cd "$PG_TMP" && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" \
            -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_TMP/sock \
-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null 2>&1); then
            started=1
            break
        fi
        if grep -qiE 'could not bind|address already in use|could not create any TCP/IP sockets' \
            "$PG_TMP/server.log" 2>/dev/null; then
            log "port $port taken while starting; trying the next one"
            port=$((port + 1))
            continue
        fi
        cat "$PG_TMP/server.log" >&2 || true
        die "PostgreSQL failed to start"
    done
    [ -n "$started" ] || die "PostgreSQL: no free port found"
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 || die "PostgreSQL not accepting connections"
    export FLEETPKI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    log "postgres on 127.0.0.1:$port ($PG_BIN, data in $PG_TMP)"
fi

# ---------------------------------------------------------------- tests
export FLEETPKI_REQUIRE_TOOLS=1

set +e
if cargo nextest --version >/dev/null 2>&1; then
    log "cargo nextest run --workspace $*"
    cargo nextest run --workspace "$@"
else
    log "cargo-nextest not found; cargo test --workspace $*"
    cargo test --workspace "$@"
fi
status=$?
set -e
exit "$status"
