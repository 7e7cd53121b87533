"""deploy/: the multi-replica compose file, its nginx and the Kubernetes manifests hold together.

Neither Docker nor a Kubernetes cluster runs here, so each file is checked as far as a real
tool allows without one:

* every Kubernetes object against the API schemas bundled in ``kubernetes-validate`` (offline),
  for the oldest and the newest Kubernetes version it knows;
* both compose files against the compose-spec JSON schema that ``check-jsonschema`` vendors;
* deploy/nginx.conf by the real nginx from Debian: ``nginx -t``, then run in front of two
  loopback backends to show it balances without stickiness, streams SSE unbuffered and lets a
  large upload through;
* the facts that cross files: every environment variable is a gigaam-api setting (read from
  the Settings class, so a renamed setting fails here), ports, names of the ConfigMap, Secret,
  volumes and services, the upload limit, and ``NUM_THREADS`` against the CPU limit.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from gigaam_api.api.routes import router
from gigaam_api.config import Settings
from tests.postgres import PackageUnavailable, apt_install, free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
CLUSTER_COMPOSE = DEPLOY / "compose.cluster.yml"
NGINX_CONF = DEPLOY / "nginx.conf"

#: Settings only the Secret may carry (never a ConfigMap, a literal or a compose file default).
SECRET_SETTINGS = frozenset({"API_KEY", "JOBS_DATABASE_URL"})
#: Services of compose.cluster.yml that run the gigaam-api server behind nginx.
REPLICA_PREFIX = "gigaam-api-"


# --- loading ------------------------------------------------------------------------------------


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in load_yaml_documents(path)]


def k8s_object(kind: str, name: str = "gigaam-api") -> dict[str, Any]:
    (found,) = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def cluster() -> dict[str, Any]:
    (data,) = load_yaml_documents(CLUSTER_COMPOSE)
    assert isinstance(data, dict)
    return data


def replicas() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = cluster()["services"]
    return {name: svc for name, svc in services.items() if name.startswith(REPLICA_PREFIX)}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` / ``${VAR:?error}`` substitution."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if name in variables and (variables[name] or not operator.startswith(":")):
            return variables[name]
        if operator.endswith("?"):
            raise KeyError(f"{name}: {rest}")
        return rest or ""

    return re.sub(r"\$\{(\w+)(:?[-?]?)([^}]*)\}", substitute, value)


def settings_env_names() -> set[str]:
    """Environment variable names gigaam-api reads: its Settings fields, upper-cased."""
    return {name.upper() for name in Settings.model_fields}


def setting_default(name: str) -> Any:
    return Settings.model_fields[name.lower()].default


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod_spec(obj)["containers"] if c["name"] == name]
    (only,) = found
    return only


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def nginx_directives(text: str) -> list[list[str]]:
    """Each ``name args…;`` statement of nginx.conf as a word list (comments dropped)."""
    code = re.sub(r"#[^\n]*", "", text)
    statements = re.split(r"[;{}]", code)
    return [s.split() for s in statements if s.strip()]


def nginx_values(name: str) -> list[list[str]]:
    text = NGINX_CONF.read_text(encoding="utf-8")
    return [words[1:] for words in nginx_directives(text) if words[0] == name]


# --- every file parses and matches its schema ---------------------------------------------------


def test_every_deploy_yaml_file_parses_into_objects() -> None:
    files = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
    assert CLUSTER_COMPOSE in files
    assert len(files) >= 8
    for path in files:
        docs = load_yaml_documents(path)
        assert docs, path
        assert all(isinstance(doc, dict) for doc in docs), path


@pytest.mark.parametrize("version", [all_versions()[0], all_versions()[-1]])
def test_kubernetes_manifests_match_the_api_schema(version: str) -> None:
    """Strict: an unknown or misspelt field (``readinesProbe``) fails, not just a wrong type."""
    objects = k8s_objects()
    assert {o["kind"] for o in objects} >= {
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
        "StatefulSet",
    }
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {exc.message}")


def test_kubernetes_validate_rejects_a_broken_manifest() -> None:
    """The schema check above has teeth: a misspelt probe and a string replica count fail."""
    broken = json.loads(json.dumps(k8s_object("Deployment")))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, all_versions()[-1], strict=True)
    broken = json.loads(json.dumps(k8s_object("Deployment")))
    pod_spec(broken)["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/health"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, all_versions()[-1], strict=True)


def compose_spec_validator() -> jsonschema.protocols.Validator:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


@pytest.mark.parametrize(
    "path", [CLUSTER_COMPOSE, ROOT / "docker-compose.yml"], ids=lambda p: p.name
)
def test_compose_files_match_the_compose_spec(path: Path) -> None:
    validator = compose_spec_validator()
    (data,) = load_yaml_documents(path)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]
    assert errors == []
    # ... and the validator does reject what Compose would (a misspelt service key).
    broken = dict(data, services={"x": {"image": "a", "restartt": "always"}})
    assert not validator.is_valid(broken)


def test_kustomization_applies_every_manifest_except_the_examples() -> None:
    (kustomization,) = load_yaml_documents(K8S / "kustomization.yaml")
    applied = set(kustomization["resources"])
    expected = {p.name for p in k8s_files() if not p.name.endswith(".example.yaml")}
    assert applied == expected
    # A Secret with placeholder values must never be applied by accident.
    assert all("Secret" not in {d["kind"] for d in load_yaml_documents(K8S / n)} for n in applied)


# --- environment variables are gigaam-api settings ----------------------------------------------


def gigaam_env_names() -> dict[str, set[str]]:
    """Variable names each deploy file hands to gigaam-api, by where they come from."""
    found: dict[str, set[str]] = {}
    found["configmap"] = set(k8s_object("ConfigMap")["data"])
    found["secret"] = set(k8s_object("Secret")["stringData"])
    for kind in ("Deployment", "Job"):
        for obj in (o for o in k8s_objects() if o["kind"] == kind):
            for c in pod_spec(obj)["containers"]:
                if c["image"].startswith("gigaam-api"):
                    found[f"{kind}/{c['name']}"] = {e["name"] for e in c.get("env", [])}
    for name, svc in cluster()["services"].items():
        if svc.get("image", "").startswith("gigaam-api"):
            found[f"compose/{name}"] = set(svc.get("environment", {}))
    return found


def test_every_variable_in_the_deploy_files_is_a_setting() -> None:
    known = settings_env_names()
    used = gigaam_env_names()
    assert len(used) >= 6
    for where, names in used.items():
        assert names <= known, f"{where}: not gigaam-api settings: {sorted(names - known)}"


def test_secrets_come_only_from_the_secret() -> None:
    used = gigaam_env_names()
    assert used["secret"] == SECRET_SETTINGS
    for where, names in used.items():
        if where != "secret" and not where.startswith("compose/"):
            assert not names & SECRET_SETTINGS, where
    deployment = container(k8s_object("Deployment"), "gigaam-api")
    assert {"secretRef": {"name": "gigaam-api"}} in deployment["envFrom"]
    assert {"configMapRef": {"name": "gigaam-api"}} in deployment["envFrom"]


# --- Kubernetes: the Deployment and what it refers to --------------------------------------------


def test_deployment_probes_hit_routes_the_server_has() -> None:
    served = {getattr(route, "path", None) for route in router.routes}
    c = container(k8s_object("Deployment"), "gigaam-api")
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    # Liveness must not depend on the model or the database (no restart storm in an outage).
    assert c["livenessProbe"]["httpGet"]["path"] == "/metrics"
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] in served
        assert c[probe]["httpGet"]["port"] == "http"


def test_deployment_runs_unprivileged_with_resources_and_threads_matched_to_the_cpu_limit() -> None:
    deployment = k8s_object("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    security = pod_spec(deployment)["securityContext"]
    assert security["runAsUser"] == 1000
    assert security["runAsNonRoot"] is True
    c = container(deployment, "gigaam-api")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in c["env"]}
    # NUM_THREADS follows the CPU limit by construction, whatever the limit is changed to.
    assert env["NUM_THREADS"]["valueFrom"]["resourceFieldRef"] == {
        "containerName": "gigaam-api",
        "resource": "limits.cpu",
        "divisor": "1",
    }
    assert cpu_cores(c["resources"]["limits"]["cpu"]) >= 1
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(env["PORT"]["value"])


def test_deployment_volumes_configmap_and_service_line_up() -> None:
    deployment = k8s_object("Deployment")
    config = k8s_object("ConfigMap")["data"]
    c = container(deployment, "gigaam-api")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec(deployment)["volumes"]
        if "persistentVolumeClaim" in v
    }
    pvcs = {
        o["metadata"]["name"]: o["spec"]
        for o in k8s_objects()
        if o["kind"] == "PersistentVolumeClaim"
    }
    assert mounts["models"]["mountPath"] == config["MODELS_DIR"]
    assert mounts["models"]["readOnly"] is True
    assert "ReadOnlyMany" in pvcs[claims["models"]]["accessModes"]
    assert mounts["jobs"]["mountPath"] == config["JOBS_DIR"]
    assert not mounts["jobs"].get("readOnly", False)
    assert pvcs[claims["jobs"]]["accessModes"] == ["ReadWriteMany"]

    # The prepare Job fills the same models claim, writable, with the same settings.
    job = k8s_object("Job", "gigaam-prepare")
    prepare = container(job, "prepare")
    assert {"configMapRef": {"name": "gigaam-api"}} in prepare["envFrom"]
    (models,) = [v for v in pod_spec(job)["volumes"] if v["name"] == "models"]
    assert models["persistentVolumeClaim"]["claimName"] == claims["models"]
    assert pod_spec(job)["securityContext"]["runAsUser"] == 1000

    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert "sessionAffinity" not in service["spec"]
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in c["ports"]}
    pdb = k8s_object("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = k8s_object("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    ingress = k8s_object("Ingress")
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": port["name"]}}


def test_ingress_and_nginx_allow_the_server_upload_limit() -> None:
    """The proxy must let MAX_UPLOAD_MB through, so the server's own 413 is what users see."""
    limit = f"{setting_default('MAX_UPLOAD_MB')}m"
    annotations = k8s_object("Ingress")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-body-size"] == limit
    assert annotations[prefix + "proxy-buffering"] == "off"
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert nginx_values("client_max_body_size") == [[limit]]
    for service in replicas().values():
        assert "MAX_UPLOAD_MB" not in service["environment"]  # else the limits above must follow


# --- compose: replicas, database, load balancer ---------------------------------------------------


def test_cluster_compose_runs_several_replicas_on_one_database_and_jobs_volume() -> None:
    data = cluster()
    services = data["services"]
    reps = replicas()
    assert len(reps) >= 2
    postgres = services["postgres"]["environment"]
    for name, svc in reps.items():
        env = svc["environment"]
        assert svc["build"] == ".."  # the repository's Dockerfile, seen from deploy/
        assert svc["hostname"] == name
        assert "ports" not in svc, f"{name}: only the load balancer is published"
        url = urlsplit(interpolate(env["JOBS_DATABASE_URL"], {"POSTGRES_PASSWORD": "pw"}))
        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == postgres["POSTGRES_USER"]
        assert url.path == "/" + postgres["POSTGRES_DB"]
        assert url.password == interpolate(
            postgres["POSTGRES_PASSWORD"], {"POSTGRES_PASSWORD": "pw"}
        )
        assert int(env["JOB_LEASE_SECONDS"]) > 0
        assert int(env["NUM_THREADS"]) == svc["cpus"]
        volumes = {v.split(":")[1]: v for v in svc["volumes"]}
        assert volumes[env["JOBS_DIR"]] == f"jobs:{env['JOBS_DIR']}"
        assert volumes[env["MODELS_DIR"]] == f"models:{env['MODELS_DIR']}:ro"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["depends_on"]["prepare"]["condition"] == "service_completed_successfully"
        assert "/health" in " ".join(svc["healthcheck"]["test"])
    assert {"models", "jobs", "postgres"} <= set(data["volumes"])
    # The password has no default: compose refuses to start without one in .env.
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(postgres["POSTGRES_PASSWORD"], {})
    for svc in reps.values():
        with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
            interpolate(svc["environment"]["JOBS_DATABASE_URL"], {})
    prepare = services["prepare"]
    assert {"models:/data/models", "jobs:/data/jobs"} <= set(prepare["volumes"])
    # It must warm the graph cache for the same MODEL / QUANTIZE_INT8: the same .env.
    assert prepare["env_file"] == next(iter(reps.values()))["env_file"]


def test_cluster_compose_is_separate_from_the_single_box_file() -> None:
    single = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert "postgres" not in single["services"]
    assert not any(name.startswith(REPLICA_PREFIX) for name in single["services"])
    assert cluster()["name"] == "gigaam-cluster"


def test_nginx_balances_exactly_the_compose_replicas_without_stickiness() -> None:
    services = cluster()["services"]
    nginx = services["nginx"]
    # Relative paths in a compose file start at the file's own folder, deploy/.
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert (CLUSTER_COMPOSE.parent / "nginx.conf").resolve() == NGINX_CONF.resolve()
    (published,) = nginx["ports"]
    (listen,) = nginx_values("listen")
    assert published.split(":")[1] == listen[0]
    servers = {words[0] for words in nginx_values("server") if words and ":" in words[0]}
    expected = {f"{name}:{svc['environment']['PORT']}" for name, svc in replicas().items()}
    assert servers == expected
    assert set(nginx["depends_on"]) == set(replicas())
    for sticky in ("ip_hash", "hash", "sticky"):
        assert nginx_values(sticky) == [], sticky
    assert nginx_values("proxy_buffering") == [["off"]]
    assert nginx_values("proxy_request_buffering") == [["off"]]
    (timeout,) = nginx_values("proxy_read_timeout")
    assert int(timeout[0].rstrip("s")) >= 3600


# --- nginx itself ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        try:
            apt_install("nginx")
        except PackageUnavailable as exc:
            pytest.skip(str(exc))
        found = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    assert found is not None
    return found


def local_nginx_conf(tmp: Path, port: int, backends: list[int]) -> Path:
    """deploy/nginx.conf with loopback addresses for the compose names, and nothing else changed.

    Compose service names resolve only inside compose's network, and port 80 needs root.
    """
    text = NGINX_CONF.read_text(encoding="utf-8")
    names = sorted(replicas())
    assert len(names) == len(backends)
    for name, backend in zip(names, backends, strict=True):
        text, count = re.subn(rf"\b{re.escape(name)}:\d+", f"127.0.0.1:{backend}", text)
        assert count == 1
    text, count = re.subn(r"listen\s+80;", f"listen 127.0.0.1:{port};", text)
    assert count == 1
    path = tmp / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


def nginx_argv(binary: str, conf: Path, tmp: Path) -> list[str]:
    return [binary, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log"),
            "-g", f"pid {tmp / 'nginx.pid'};"]  # fmt: skip


def test_nginx_accepts_the_config(nginx_binary: str, tmp_path: Path) -> None:
    conf = local_nginx_conf(tmp_path, free_loopback_port(), [free_loopback_port()] * 2)
    done = subprocess.run(
        [*nginx_argv(nginx_binary, conf, tmp_path), "-t"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


class Backend(ThreadingHTTPServer):
    """A stand-in replica: names itself, counts upload bytes, streams SSE on a signal."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), BackendHandler)
        self.name = name
        self.release_second_event = threading.Event()


class BackendHandler(BaseHTTPRequestHandler):
    server: Backend
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path != "/events":
            self._reply(self.server.name.encode())
            return
        # Event 2 is only written after the client got event 1: buffering would deadlock.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(b"data: one\n\n")
        self.wfile.flush()
        released = self.server.release_second_event.wait(timeout=30)
        self.wfile.write(b"data: two\n\n" if released else b"data: never-released\n\n")
        self.wfile.flush()
        self.close_connection = True

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0"))
        received = 0
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._reply(f"{self.server.name} {received}".encode())


@pytest.fixture
def balanced(nginx_binary: str, tmp_path: Path) -> Iterator[tuple[int, list[Backend]]]:
    """deploy/nginx.conf running on a loopback port in front of two stand-in replicas."""
    backends = [Backend(name) for name in sorted(replicas())]
    threads = [threading.Thread(target=b.serve_forever, daemon=True) for b in backends]
    for thread in threads:
        thread.start()
    port = free_loopback_port()
    conf = local_nginx_conf(tmp_path, port, [b.server_address[1] for b in backends])
    access_log = (tmp_path / "access.log").open("wb")  # nginx logs requests to stdout
    process = subprocess.Popen(
        [*nginx_argv(nginx_binary, conf, tmp_path), "-g", "daemon off;"],
        stdout=access_log,
        stderr=subprocess.PIPE,
    )
    access_log.close()
    try:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.05)
        yield port, backends
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
        for backend in backends:
            backend.release_second_event.set()
            backend.shutdown()
            backend.server_close()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_nginx_spreads_requests_over_every_replica(balanced: tuple[int, list[Backend]]) -> None:
    port, backends = balanced
    answers = [request(port, "GET", "/health") for _ in range(8)]
    assert {status for status, _ in answers} == {200}
    # No stickiness: the same client reaches every replica.
    assert {body.decode() for _, body in answers} == {b.name for b in backends}


def test_nginx_passes_an_upload_over_its_default_limit(balanced: tuple[int, list[Backend]]) -> None:
    """nginx's own default is 1 MB; a 5 MB upload must reach a replica whole."""
    port, backends = balanced
    size = 5 * 1024 * 1024
    status, body = request(port, "POST", "/v1/audio/transcriptions", b"\0" * size)
    assert status == 200
    name, received = body.decode().split()
    assert name in {b.name for b in backends}
    assert int(received) == size


def test_nginx_streams_sse_events_as_they_are_written(balanced: tuple[int, list[Backend]]) -> None:
    port, backends = balanced
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", "/events")
        response = conn.getresponse()
        assert response.status == 200
        # Read event 1 while the replica holds event 2 back; a buffering proxy would hold it.
        first = response.readline() + response.readline()
        assert first == b"data: one\n\n"
        for backend in backends:
            backend.release_second_event.set()
        assert response.read().startswith(b"data: two\n\n")
    finally:
        conn.close()


def test_nginx_logs_paths_without_the_query_string(
    balanced: tuple[int, list[Backend]], tmp_path: Path
) -> None:
    """A signed audio link (``?expires=…&signature=…``) opens that audio for up to an hour:
    the balancer's access log must not keep it."""
    port, _ = balanced
    secret = "5ec7e7" * 10
    path = "/v1/jobs/job_0123456789abcdef/audio"
    status, _ = request(port, "GET", f"{path}?expires=1767225600&signature={secret}")
    assert status == 200
    log = tmp_path / "access.log"
    deadline = time.monotonic() + 10
    while path not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    text = log.read_text()
    assert f'"GET {path} HTTP/1.1" 200' in text
    assert secret not in text and "expires=" not in text
