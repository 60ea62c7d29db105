#!/usr/bin/env bash
# Supply-chain checks, run by hand (not by .ci/run: cargo-deny and cargo-cyclonedx take many
# minutes to compile, and a cold CI must stay under 45 minutes). What needs neither tool nor
# network (lock sources and checksums, licences against deny.toml's allow-list, pinned and
# sha256-checked fetches) runs in .ci/run: scripts/check-supply-chain.py.
#
#   scripts/supply-chain.sh              licences (deny.toml allow-list), bans, sources; and an
#                                        SBOM per crate (CycloneDX JSON, beside its Cargo.toml)
#   scripts/supply-chain.sh advisories   also RustSec advisories (needs the advisory database,
#                                        fetched from github.com/rustsec/advisory-db)
#
# Installs the tools on first use: cargo install --locked cargo-deny cargo-cyclonedx.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo-deny cargo-cyclonedx; do
    if ! command -v "$tool" >/dev/null; then
        echo "supply-chain: installing $tool" >&2
        cargo install --locked "$tool"
    fi
done
checks=(licenses bans sources)
if [[ "${1:-}" == advisories ]]; then
    checks+=(advisories)
fi
cargo deny check "${checks[@]}"
cargo cyclonedx --format json --all
echo "supply-chain: ${checks[*]} passed; SBOMs:" >&2
find . \( -path ./target -o -path ./.cache -o -path ./fuzz \) -prune -o -name '*.cdx.json' -print >&2
