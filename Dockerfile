# xaibids BIDS-App image (first version; see workflows/ for Apptainer and HPC recipes).
#   docker build -t xaibids .
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out xaibids /data /out participant
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# CPU PyTorch by default; pass --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
# (and a matching TORCH_SPEC) for a CUDA build.
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/xaibids \
    PATH=/opt/xaibids/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    XAIBIDS_CONTAINER_TYPE=docker

RUN python3 -m venv /opt/xaibids \
 && if [ -n "$TORCH_INDEX" ]; then pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; \
    else pip install "$TORCH_SPEC"; fi

COPY . /src/xaibids
RUN pip install /src/xaibids && rm -rf /src/xaibids

RUN useradd --create-home --uid 1000 xaibids
USER xaibids
WORKDIR /tmp

ARG VERSION=dev
LABEL org.opencontainers.image.title="xaibids" \
      org.opencontainers.image.description="BIDS-App for explainable deep learning in neuroimaging" \
      org.opencontainers.image.source="https://github.com/xaibids/xaibids" \
      org.opencontainers.image.version="${VERSION}"
ENV XAIBIDS_CONTAINER_IMAGE="xaibids:${VERSION}"

ENTRYPOINT ["xaibids"]
