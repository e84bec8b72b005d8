# xaibids BIDS-App image.
#   docker build -t xaibids .
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out xaibids /data /out participant
# Offline build of this image (buildah, local Debian base, on-disk torch wheel):
#   workflows/container/build-local.sh
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
# CPU PyTorch by default. For a CUDA build pass e.g.
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
# (an empty TORCH_INDEX takes torch from PyPI / PIP_FIND_LINKS).
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
# Build-time only: a CA bundle for pip (PIP_CERT) and a folder of wheels (PIP_FIND_LINKS),
# both handed in as build volumes; neither ends up in the image.
ARG PIP_CERT=""
ARG PIP_FIND_LINKS=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# pip reads PIP_CERT / PIP_FIND_LINKS from the environment; empty ones are unset first.
RUN python3 -m venv /opt/xaibids \
 && { [ -n "$PIP_CERT" ] || unset PIP_CERT; } && { [ -n "$PIP_FIND_LINKS" ] || unset PIP_FIND_LINKS; } \
 && if [ -n "$TORCH_INDEX" ]; then \
        /opt/xaibids/bin/pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; \
    else /opt/xaibids/bin/pip install "$TORCH_SPEC"; fi
COPY . /src/xaibids
RUN { [ -n "$PIP_CERT" ] || unset PIP_CERT; } && { [ -n "$PIP_FIND_LINKS" ] || unset PIP_FIND_LINKS; } \
 && /opt/xaibids/bin/pip install /src/xaibids \
 && find /opt/xaibids -name __pycache__ -prune -exec rm -rf {} + \
 && /opt/xaibids/bin/xaibids --version

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 xaibids
COPY --from=build /opt/xaibids /opt/xaibids
# Threads are not fixed here: the xaibids CLI exports OMP_NUM_THREADS, MKL_NUM_THREADS and
# OPENBLAS_NUM_THREADS from --omp-nthreads (default min(--nprocs, 8)) to every Nipype worker
# and SLURM job it starts, and nodes that declare one thread keep BLAS to one (xaibids.threads).
ENV VIRTUAL_ENV=/opt/xaibids \
    PATH=/opt/xaibids/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/home/xaibids \
    XAIBIDS_CONTAINER_TYPE=docker
USER xaibids
WORKDIR /tmp

ARG VERSION=dev
LABEL org.opencontainers.image.title="xaibids" \
      org.opencontainers.image.description="BIDS-App for explainable deep learning in neuroimaging" \
      org.opencontainers.image.source="https://github.com/xaibids/xaibids" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
ENV XAIBIDS_CONTAINER_IMAGE="xaibids:${VERSION}"

ENTRYPOINT ["xaibids"]
