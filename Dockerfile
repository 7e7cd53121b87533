# gigaam-api CPU image: ONNX Runtime + ffmpeg, no PyTorch, runs as UID 1000.
# Weights are NOT baked in: they are downloaded on first start into the /data/models volume
# (or pre-fetched with `docker compose --profile tools run --rm download-weights`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build stage: resolve and install the pinned dependencies into a self-contained venv ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only what the package build needs, so editing docs or tests does not bust this layer.
COPY pyproject.toml README.md requirements.lock ./
COPY gigaam_api ./gigaam_api
# requirements.lock pins every transitive dependency too: the image is reproducible.
RUN pip install --no-compile -c requirements.lock . \
    && python -m compileall -q /opt/venv/lib

# --- runtime stage: slim base + ffmpeg from Debian + the venv; no compilers, no pip cache ----
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data/models /data/jobs \
    && chown 1000:1000 /data/models /data/jobs
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODELS_DIR=/data/models \
    JOBS_DIR=/data/jobs \
    HOST=0.0.0.0 \
    PORT=8000
USER 1000:1000
WORKDIR /home/app
VOLUME ["/data/models", "/data/jobs"]
EXPOSE 8000
# /health answers 503 until the model is loaded, so the start period covers the first
# ~880 MB download. No curl in slim images: Python's urllib does the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gigaam-api", "serve"]
