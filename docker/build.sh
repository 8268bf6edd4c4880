#!/usr/bin/env bash
# Builds the container image (docker/Dockerfile): compiles a statically
# linked `strom`, gives the Dockerfile a context with only that binary, then
# builds, smoke-runs (`strom --version` in the image) and exports it with the
# daemonless image tool (buildah, podman, skopeo; installed on first use).
#
#   docker/build.sh [TAG]         default localhost/strom:<version>, the tag the
#                                 Helm chart's default values run
#
# Env: OCI_ARCHIVE (where the image archive goes). The daemonless build
# itself is docker/build-image.sh (buildah, podman, skopeo).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
tag="${1:-localhost/strom:$version}"
target=x86_64-unknown-linux-gnu

# --target is required: without it crt-static also applies to build
# scripts and proc macros, which cannot be static.
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target "$target" -p strom

context="$root/target/image-context"
rm -rf "$context"
mkdir -p "$context/var/lib/strom/data"
# Without the debug line tables (backtraces keep the function names).
strip --strip-debug -o "$context/strom" "target/$target/release/strom"
docker/build-image.sh docker/Dockerfile "$context" "$tag" -- --version
