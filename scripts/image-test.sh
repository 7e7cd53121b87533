#!/usr/bin/env bash
# Build the container image with podman and run it: the Dockerfile is exercised, not just parsed.
#
# Docker Hub cannot be reached on CI machines, so the official python:3.11-slim-bookworm base is
# replaced by a stand-in built here with debootstrap (Debian bookworm + python3.11, python3-venv,
# python-is-python3, ca-certificates) and passed through the Dockerfile's PYTHON_IMAGE build arg.
# The stand-in is cached (a podman image plus a tarball under IMAGE_TEST_CACHE) keyed on
# BASE_RECIPE_VERSION, so reruns skip debootstrap; it is built from nothing when absent.
#
# Then the built image is started with the fixture checkpoint on a free loopback port and checked:
# /health 200, a WAV and an MP3 transcription, srt output, the process runs as UID 1000, torch is
# not importable, no ffmpeg package or program is in the image, the
# HEALTHCHECK survived the build and passes, `podman stop` ends it cleanly; the image size is printed.
# It also opens the web page and runs one durable job (upload in the /data/jobs volume).
# The container and the built image are always removed; the cached base and the build's layer
# cache are kept.
#
# Needs root on Debian 12 (it apt-installs podman, runc, debootstrap and curl when missing and
# adds what podman lacks to /etc/containers/containers.conf). Settings (environment):
#   IMAGE_TEST_CACHE             where the stand-in tarball lives (default /var/tmp/gigaam-api-image-test)
#   IMAGE_TEST_SHARED            the shared reference data folder (default ../shared)
#   IMAGE_TEST_KEEP_LAYERS       0: also remove the intermediate layers (default 1: keep as cache)
set -euo pipefail

# Bump when the stand-in recipe below changes: it names the cached base image and tarball.
BASE_RECIPE_VERSION=2
SUITE=bookworm
BASE_PACKAGES=python3.11,python3-venv,python-is-python3,ca-certificates

cd "$(dirname "$0")/.."
SHARED=${IMAGE_TEST_SHARED:-../shared}
CACHE_DIR=${IMAGE_TEST_CACHE:-/var/tmp/gigaam-api-image-test}
BASE_IMAGE=localhost/gigaam-api-standin-base:$SUITE-r$BASE_RECIPE_VERSION
BASE_TARBALL=$CACHE_DIR/standin-base-$SUITE-r$BASE_RECIPE_VERSION.tar
IMAGE=localhost/gigaam-api-image-test:$$
CONTAINER=gigaam-api-image-test-$$
CHECKPOINT=$SHARED/golden/v3_ctc/v3_ctc.ckpt
WAV=$SHARED/corpus/pisets/test_sound_ru.wav
MP3=$SHARED/corpus/edge_cases/pisets.mp3
STOP_GRACE_S=30
WORK=$(mktemp -d)
FAILURES=0
START_S=$SECONDS

log() { printf '[image-test] %s\n' "$*" >&2; }
pass() { printf '[image-test] PASS %s\n' "$*" >&2; }
fail() {
    printf '[image-test] FAIL %s\n' "$*" >&2
    FAILURES=$((FAILURES + 1))
}
die() {
    printf '[image-test] ERROR %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local rc=$?
    if command -v podman >/dev/null 2>&1; then
        if [ "$rc" -ne 0 ] && podman container exists "$CONTAINER" 2>/dev/null; then
            log "container log (last 40 lines):"
            podman logs --tail 40 "$CONTAINER" >&2 2>&1 || true
        fi
        podman rm --force --volumes --ignore "$CONTAINER" >/dev/null 2>&1 || true
        # --no-prune keeps the untagged intermediate layers (dependencies, the ffmpeg layer) as
        # the build cache of the next run; IMAGE_TEST_KEEP_LAYERS=0 removes them too.
        if [ "${IMAGE_TEST_KEEP_LAYERS:-1}" = 1 ]; then
            podman rmi --force --no-prune "$IMAGE" >/dev/null 2>&1 || true
        else
            podman rmi --force "$IMAGE" >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || die "run as root: it installs podman and builds images in root's storage"
for file in "$CHECKPOINT" "$WAV" "$MP3"; do
    [ -f "$file" ] || die "missing fixture $file (the shared reference data must sit beside the repository)"
done

# --- tools from Debian -------------------------------------------------------------------------
ensure_packages() {
    local missing=() pkg
    for pkg in podman runc debootstrap curl; do
        dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "apt-get install ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >&2
    fi
}

# crun fails on the hybrid cgroup v1/v2 hosts CI runs on, and podman's defaults of raising the
# open-files and process limits (1048576, 4194304) are refused there ("error setting rlimit"). Modest
# limits that these hosts accept (measured: nproc 65536 and nofile 20000 refused, the values below
# work), never above the host's own hard limits. Only keys the file does not set are added, each
# under its own section, so an administrator's choices are kept.
configure_podman() {
    local conf=/etc/containers/containers.conf nofile=16384 nproc=4096 host
    host=$(ulimit -Hn)
    if [ "$host" != unlimited ] && [ "$host" -lt "$nofile" ]; then nofile=$host; fi
    host=$(ulimit -Hu)
    if [ "$host" != unlimited ] && [ "$host" -lt "$nproc" ]; then nproc=$host; fi
    mkdir -p /etc/containers
    touch "$conf"
    add_key "$conf" engine runtime '"runc"'
    add_key "$conf" containers default_ulimits "[\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
}

add_key() {  # add_key FILE SECTION KEY VALUE: only when KEY is not set anywhere in FILE
    local conf=$1 section=$2 key=$3 value=$4
    if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$conf"; then
        return
    fi
    log "adding $key = $value under [$section] in $conf"
    if grep -Eq "^[[:space:]]*\[$section\][[:space:]]*$" "$conf"; then
        sed -i -E "0,/^[[:space:]]*\[$section\][[:space:]]*$/s//[$section]\n$key = $(printf '%s' "$value" | sed 's/[&/\]/\\&/g')/" "$conf"
    else
        printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value" >>"$conf"
    fi
}

# --- the stand-in base -------------------------------------------------------------------------
debian_mirror() {
    # The first main-archive URI of apt's configured sources (deb822 or one-line format): the
    # stand-in is fetched from wherever this machine already gets its Debian packages.
    local uri
    uri=$(
        {
            cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
                /^URIs:/ {uris = $2} /^Suites:/ {suites = $0}
                /^$/ {if (suites ~ / '"$SUITE"'( |$)/ && uris != "") print uris; uris = ""; suites = ""}
                END {if (suites ~ / '"$SUITE"'( |$)/ && uris != "") print uris}'
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                | awk '$1 == "deb" && $0 ~ / '"$SUITE"' / {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; break}}'
        } | grep -v -- '-security' | head -n 1
    )
    [ -n "$uri" ] || die "no Debian $SUITE source in /etc/apt/sources.list(.d) to debootstrap from"
    printf '%s\n' "$uri"
}

ensure_base() {
    if podman image exists "$BASE_IMAGE"; then
        log "stand-in base $BASE_IMAGE: cached image"
        return
    fi
    if [ ! -s "$BASE_TARBALL" ]; then
        local mirror rootfs
        mirror=$(debian_mirror)
        rootfs=$WORK/rootfs
        log "debootstrap $SUITE ($BASE_PACKAGES) from apt's configured mirror"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" \
            >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
        # What Debian's slim images leave out, now and in every later apt-get install (the ffmpeg
        # layer): documentation, manuals, translations, package lists, the download cache.
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
            'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' \
            'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \
            'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/locale/*' \
            >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
        find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
        rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
        chroot "$rootfs" apt-get clean
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
        mkdir -p "$CACHE_DIR"
        tar --numeric-owner -C "$rootfs" -cf "$BASE_TARBALL.part" .
        mv "$BASE_TARBALL.part" "$BASE_TARBALL"
        rm -rf "$rootfs"
    fi
    log "importing $BASE_TARBALL as $BASE_IMAGE"
    podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
}

# --- pip configuration for the build -----------------------------------------------------------
# pip inside the build trusts the host's CA bundle (bind-mounted over the base's) and uses the
# host's index settings, so a machine behind a TLS-inspecting proxy or with a package mirror builds
# the way it installs. They travel as build args of the deps stage (never in the runtime image).
# Only http(s) indexes are passed on: a file:// index is a path on the host.
pip_build_args() {
    local pip_cmd=() env_name key value
    if [ -x .venv/bin/python ]; then
        pip_cmd=(.venv/bin/python -m pip)
    elif python3 -m pip --version >/dev/null 2>&1; then
        pip_cmd=(python3 -m pip)
    fi
    printf -- '--build-arg\nPIP_CERT=/etc/ssl/certs/ca-certificates.crt\n'
    for env_name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
        key=$(printf '%s' "${env_name#PIP_}" | tr 'A-Z_' 'a-z-')
        value=${!env_name:-}
        if [ -z "$value" ] && [ "${#pip_cmd[@]}" -gt 0 ]; then
            value=$("${pip_cmd[@]}" config list 2>/dev/null | sed -n -E "s/^[a-z:.]*\.$key='(.*)'$/\1/p" | tail -n 1)
        fi
        if [ "$env_name" != PIP_TRUSTED_HOST ]; then
            value=$(printf '%s' "$value" | tr ' ' '\n' | grep -E '^https?://' | paste -s -d ' ' || true)
        fi
        [ -z "$value" ] || printf -- '--build-arg\n%s=%s\n' "$env_name" "$value"
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

json_text() {  # the "text" field of a JSON response, or nothing
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("text", ""))' "$1" 2>/dev/null || true
}

# --- main --------------------------------------------------------------------------------------
ensure_packages
configure_podman
ensure_base
log "stand-in base size: $(($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") / 1000000)) MB"

mapfile -t pip_args < <(pip_build_args)
log "podman build --format docker (base $BASE_IMAGE)"
build_start=$SECONDS
podman build --network host --format docker --layers \
    --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
    "${pip_args[@]}" -v /etc/ssl/certs:/etc/ssl/certs:ro \
    -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; die "podman build failed"; }
cached_steps=$(grep -c -- '--> Using cache' "$WORK/build.log" || true)
log "built in $((SECONDS - build_start)) s ($cached_steps steps from the layer cache)"
if [ -n "${IMAGE_TEST_BUILD_LOG:-}" ]; then cp "$WORK/build.log" "$IMAGE_TEST_BUILD_LOG"; fi

port=$(free_port)
log "starting the container on 127.0.0.1:$port with the fixture checkpoint"
# Without systemd, podman logs "unable to get systemd connection" errors at start and stop: it
# schedules health checks with systemd timers. Harmless here: the check is run by hand below.
podman run -d --name "$CONTAINER" --network host \
    -e HOST=127.0.0.1 -e "PORT=$port" -e NUM_THREADS=1 \
    -e CHECKPOINT_PATH=/fixtures/v3_ctc.ckpt \
    -v "$(realpath "$CHECKPOINT"):/fixtures/v3_ctc.ckpt:ro" \
    "$IMAGE" >/dev/null
base=http://127.0.0.1:$port

status=000
for _ in $(seq 1 180); do
    status=$(curl -s -o "$WORK/health.json" -w '%{http_code}' --max-time 5 "$base/health" || true)
    [ "$status" = 200 ] && break
    [ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER")" = true ] || break
    sleep 1
done
[ "$status" = 200 ] || die "/health never answered 200 (last status $status)"
pass "/health 200: $(cat "$WORK/health.json")"

for audio in "$WAV" "$MP3"; do
    status=$(curl -s -o "$WORK/out.json" -w '%{http_code}' --max-time 120 \
        -F "file=@$audio" -F model=whisper-1 "$base/v1/audio/transcriptions" || true)
    text=$(json_text "$WORK/out.json")
    if [ "$status" = 200 ] && [ -n "$text" ]; then
        pass "transcription of $(basename "$audio"): 200, text \"${text:0:60}\""
    else
        fail "transcription of $(basename "$audio"): status $status, body $(head -c 300 "$WORK/out.json")"
    fi
done

status=$(curl -s -o "$WORK/out.srt" -w '%{http_code}' --max-time 120 \
    -F "file=@$WAV" -F model=whisper-1 -F response_format=srt "$base/v1/audio/transcriptions" || true)
if [ "$status" = 200 ] && head -n 2 "$WORK/out.srt" | tail -n 1 | grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3} --> '; then
    pass "response_format=srt: 200, a numbered cue with a timing line"
else
    fail "response_format=srt: status $status, body $(head -c 300 "$WORK/out.srt")"
fi

status=$(curl -s -o "$WORK/page.html" -w '%{http_code} %{content_type}' --max-time 10 "$base/" || true)
if [ "${status%% *}" = 200 ] && grep -q '<html' "$WORK/page.html"; then
    pass "the web page at /: $status (its files ship in the package)"
else
    fail "the web page at /: $status"
fi

# A durable job end to end: the upload lands in the /data/jobs volume (owned by UID 1000), the
# job store's migrations ship in the package, the worker runs it.
status=$(curl -s -o "$WORK/job.json" -w '%{http_code}' --max-time 60 -F "file=@$WAV" "$base/v1/jobs" || true)
job_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("id", ""))' "$WORK/job.json" 2>/dev/null || true)
job_status=""
if [ "$status" = 202 ] && [ -n "$job_id" ]; then
    for _ in $(seq 1 120); do
        job_status=$(curl -s --max-time 5 "$base/v1/jobs/$job_id" \
            | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || true)
        case "$job_status" in completed|failed|cancelled) break ;; esac
        sleep 0.5
    done
fi
result=$(curl -s --max-time 10 "$base/v1/jobs/$job_id/result?response_format=text" || true)
if [ "$job_status" = completed ] && [ -n "$result" ]; then
    pass "a job in /data/jobs: submitted 202, completed, result text \"$result\""
else
    fail "a job: submit status $status, id '$job_id', final status '$job_status', body $(head -c 300 "$WORK/job.json")"
fi

uids=$(podman exec "$CONTAINER" sh -c 'grep "^Uid:" /proc/1/status' | awk '{print $2, $3, $4, $5}')
if [ "$uids" = "1000 1000 1000 1000" ]; then
    pass "the server (PID 1) runs as UID 1000"
else
    fail "the server runs with UIDs '$uids', not 1000"
fi

if podman exec "$CONTAINER" python -c 'import torch' >"$WORK/torch.log" 2>&1; then
    fail "torch is importable in the image"
elif grep -q "No module named 'torch'" "$WORK/torch.log"; then
    pass "import torch fails: No module named 'torch'"
else
    fail "import torch failed for another reason: $(tail -n 1 "$WORK/torch.log")"
fi

if podman exec "$CONTAINER" dpkg -s ffmpeg >/dev/null 2>&1; then
    fail "the ffmpeg Debian package is installed (decoding must need only the PyAV wheel)"
elif podman exec "$CONTAINER" sh -c 'command -v ffmpeg || command -v ffprobe' >/dev/null 2>&1; then
    fail "an ffmpeg/ffprobe program is on the image's PATH"
else
    pass "no ffmpeg Debian package and no ffmpeg/ffprobe program in the image"
fi

healthcheck=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
if printf '%s' "$healthcheck" | grep -q '/health'; then
    pass "HEALTHCHECK kept in the image: $healthcheck"
else
    fail "no HEALTHCHECK in the image config ($healthcheck): was it built with --format docker?"
fi
if podman healthcheck run "$CONTAINER" >"$WORK/hc.log" 2>&1; then
    pass "podman healthcheck run: healthy"
else
    fail "podman healthcheck run failed: $(cat "$WORK/hc.log")"
fi

stop_start=$SECONDS
podman stop --time "$STOP_GRACE_S" "$CONTAINER" >/dev/null
stop_s=$((SECONDS - stop_start))
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")
# 0: the server handled SIGTERM and shut down gracefully; 143 would be a plain SIGTERM death;
# 137 means podman had to SIGKILL it after the grace period.
if { [ "$exit_code" = 0 ] || [ "$exit_code" = 143 ]; } && [ "$stop_s" -lt "$STOP_GRACE_S" ]; then
    pass "podman stop: exit code $exit_code after ${stop_s} s (grace period ${STOP_GRACE_S} s)"
else
    fail "podman stop: exit code $exit_code after ${stop_s} s (grace period ${STOP_GRACE_S} s)"
fi

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
log "image size: $((size / 1000000)) MB (stand-in base)"
log "total $((SECONDS - START_S)) s"
[ "$FAILURES" -eq 0 ] || die "$FAILURES check(s) failed"
log "all checks passed"
