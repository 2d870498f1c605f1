# Container image of the a2i-retraining-operator (see docs/packaging.md).
#
#   docker build -t <registry>/a2i-retraining-operator:0.1.0 .
#
# The base is pinned by tag and by the digest of its multi-architecture index. Bump both
# together (e.g. `docker buildx imagetools inspect python:3.11.<patch>-slim-bookworm`).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# ---------------------------------------------------------------------------------- builder
# Installs the runtime dependencies from requirements.lock (exact versions, every file checked
# against its sha256, wheels only: nothing is compiled) and then the operator's own wheel, into
# /opt/venv, which is all the final stage takes. The wheel is built by the pinned and hashed
# setuptools of requirements-build.lock in a throwaway venv. `make lock` refreshes both locks.
FROM ${PYTHON_IMAGE} AS builder

# SOURCE_DATE_EPOCH: pip precompiles the modules (the root filesystem is read-only at run time)
# into hash-based .pyc files and the wheel's zip entries get a fixed date, so neither depends on
# when the image was built (1980-01-01: the earliest date a zip file can hold).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOURCE_DATE_EPOCH=315532800

WORKDIR /src
COPY requirements.lock requirements-build.lock pyproject.toml README.md ./
COPY operator ./operator

# Neither venv has a pip of its own: the base image's pip installs into them (`--python`).
RUN python -m venv --without-pip /opt/build \
    && python -m pip --python /opt/build/bin/python install --no-cache-dir --require-hashes --only-binary=:all: --no-deps -r requirements-build.lock \
    && python -m pip --python /opt/build/bin/python wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes --only-binary=:all: --no-deps -r requirements.lock \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps /wheels/*.whl \
    && rm /opt/venv/bin/activate* /opt/venv/bin/Activate.ps1

# ------------------------------------------------------------------------------------ final
FROM ${PYTHON_IMAGE}

# Build with --build-arg REVISION=$(git rev-parse HEAD); the version label follows pyproject.toml
# (a test keeps them equal).
ARG REVISION=unknown
LABEL org.opencontainers.image.title="a2i-retraining-operator" \
      org.opencontainers.image.description="Kubernetes operator that closes the human-in-the-loop retraining loop for Amazon SageMaker models (A2I -> manifests -> incremental training -> gated rollout)." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

# A fixed numeric user (65532, as in distroless "nonroot") so Kubernetes can verify
# runAsNonRoot; HOME points at /tmp, the only writable path when the root filesystem is read-only.
RUN groupadd --system --gid 65532 operator \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin operator

# Python and the operator, nothing else: the base's packaging tools (pip, setuptools, wheel and
# what they pulled in: all of the base's site-packages, which the operator's venv does not see),
# the pip that ensurepip bundles, C headers and developer scripts go. tests/packaging runs this
# very line on a CPython 3.11 prefix and lists what is left.
RUN prefix="$(python -c 'import sys; print(sys.prefix)')" \
    && rm -rf "${prefix:?}"/lib/python3.*/site-packages/* "${prefix:?}"/lib/python3.*/ensurepip "${prefix:?}"/include "${prefix:?}"/bin/pip* "${prefix:?}"/bin/wheel "${prefix:?}"/bin/idle* "${prefix:?}"/bin/pydoc* "${prefix:?}"/bin/2to3* "${prefix:?}"/bin/python*-config

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:${PATH} \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532
WORKDIR /tmp

# 8080: kopf liveness endpoint (/healthz); 9090: Prometheus metrics.
EXPOSE 8080 9090

ENTRYPOINT ["retraining-operator", "run"]
