#!/usr/bin/env bash
# Build the xaibids image without a Docker engine and smoke-test it (issue #9).
#
# Where `docker build` cannot run (no daemon, no network beyond package registries), this builds
# the same Dockerfile with buildah (chroot isolation, vfs storage) on a Debian base made locally
# with debootstrap, hands pip the host's CA bundle and on-disk wheels as build volumes, runs
# `xaibids --version` and `xaibids demo` inside the image as its non-root user, and exports a
# docker-archive tarball (what `docker load` and `apptainer build x.sif docker-archive://...`
# read). Needs root and Debian's buildah and debootstrap.
#
#   workflows/container/build-local.sh            # build, smoke-test, export
#   SMOKE_DEMO=0 workflows/container/build-local.sh   # skip the demo run (minutes)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/container}
VERSION=${VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/xaibids/__init__.py")}
IMAGE=${IMAGE:-localhost/xaibids:$VERSION}
BASE=localhost/debian:bookworm-minbase
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SMOKE_DEMO=${SMOKE_DEMO:-1}
B=(buildah --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || { echo "build-local: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
mkdir -p "$BUILD_DIR"
start=$(date +%s)

# 1. A minimal Debian bookworm base image, made once.
if ! "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    echo "build-local: debootstrap bookworm (minbase) into $BUILD_DIR/rootfs"
    rm -rf "$BUILD_DIR/rootfs"
    debootstrap --variant=minbase bookworm "$BUILD_DIR/rootfs" "$MIRROR" >"$BUILD_DIR/debootstrap.log"
    tar -C "$BUILD_DIR/rootfs" -cf "$BUILD_DIR/rootfs.tar" .
    ctr=$("${B[@]}" from scratch)
    "${B[@]}" add "$ctr" "$BUILD_DIR/rootfs.tar" /
    "${B[@]}" config --cmd /bin/bash "$ctr"
    "${B[@]}" commit --rm "$ctr" "$BASE"
    rm -rf "$BUILD_DIR/rootfs" "$BUILD_DIR/rootfs.tar"
fi

# 2. pip's CA bundle and wheel folder from the host's pip configuration, as build volumes.
pip_setting() { python3 -m pip config list 2>/dev/null | sed -n "s/^[a-z:.]*$1='\(.*\)'$/\1/p" | head -1; }
volumes=() args=()
cert=$(pip_setting cert || true)
if [ -n "$cert" ] && [ -f "$cert" ]; then
    mkdir -p "$BUILD_DIR/pip-cert" && cp "$cert" "$BUILD_DIR/pip-cert/ca.crt"
    volumes+=(-v "$BUILD_DIR/pip-cert:/run/xaibids-build/cert:ro")
    args+=(--build-arg PIP_CERT=/run/xaibids-build/cert/ca.crt)
fi
links=$(pip_setting find-links || true)
if [ -n "$links" ] && [ -d "$links" ]; then
    # the on-disk CPU torch wheel: take torch from there, not from the PyTorch index
    volumes+=(-v "$links:/run/xaibids-build/wheels:ro")
    args+=(--build-arg PIP_FIND_LINKS=/run/xaibids-build/wheels --build-arg TORCH_INDEX=)
fi

# 3. Build.
echo "build-local: building $IMAGE"
"${B[@]}" build --isolation chroot --layers=false "${volumes[@]}" "${args[@]}" \
    --build-arg BASE_IMAGE="$BASE" --build-arg VERSION="$VERSION" \
    -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT"
built=$(date +%s)

# 4. Smoke test as the image's non-root user.
ctr=$("${B[@]}" from "$IMAGE")
trap '"${B[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
run() { "${B[@]}" run --isolation chroot --user xaibids "$ctr" -- "$@"; }
run id -un | grep -qx xaibids
run xaibids --version
if [ "$SMOKE_DEMO" = 1 ]; then
    run xaibids demo /tmp/xaibids-demo
    run test -s /tmp/xaibids-demo/xaibids/group/desc-performance_metrics.tsv
    run test -s /tmp/xaibids-demo/xaibids/group.html
    run grep -q '"Container"' /tmp/xaibids-demo/xaibids/dataset_description.json
fi

# 5. Export for docker load / apptainer build.
archive="$BUILD_DIR/xaibids-$VERSION.docker.tar"
rm -f "$archive"
"${B[@]}" push "$IMAGE" "docker-archive:$archive:xaibids:$VERSION"
echo "build-local: image $IMAGE: $("${B[@]}" images --format '{{.Size}}' "$IMAGE")" \
     "(archive $(du -h "$archive" | cut -f1)); build $((built - start)) s," \
     "smoke test $(( $(date +%s) - built )) s"
echo "build-local: apptainer build xaibids.sif docker-archive://$archive"
