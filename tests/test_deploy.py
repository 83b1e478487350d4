"""Static checks of deploy/: the Dockerfile, compose, Kubernetes and Prometheus files.

No Docker engine or cluster is needed: files are parsed and their structure,
the ``receiver`` commands they run (resolved against the real click CLI), the
environment variable names (against :class:`receiver.settings.Settings`) and
the metric names (against :mod:`receiver.metrics`) are checked.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from receiver import metrics
from receiver.db.models import EVENT_STATUSES
from receiver.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"

# deploy/postgres/ belongs to the database setup, not to the receiver image.
YAML_FILES = sorted(
    path
    for path in [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    if not path.relative_to(DEPLOY).parts[0] == "postgres"
)

DATABASE_URL = "postgresql+psycopg://receiver:receiver@postgres:5432/receiver"
IMAGE = "receiver"  # the image name in k8s manifests, rewritten by kustomization `images:`
SECRET_NAMES = {"DYTE_API_KEY", "DYTE_ORG_ID", "DYTE_WEBHOOK_PUBLIC_KEY", "API_TOKENS"}

# Environment names that are not Settings fields nor CLI option env twins (PORT,
# RECEIVER_HOST, DATABASE_URL come from the CLI) but are allowed in manifests.
# Empty today; add a name here only with a comment saying who reads it.
EXTRA_ENV_NAMES: frozenset[str] = frozenset()
# Interpreter and installer knobs set in the Dockerfile, not read by receiver.
TOOLING_ENV_PREFIXES = ("PYTHON", "PIP_")


# ---------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[Any]:
    """All non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def load_one(path: Path) -> Any:
    """The single YAML document of a file."""
    docs = load_docs(path)
    assert len(docs) == 1, f"{path} should hold one document"
    return docs[0]


@functools.cache
def cli() -> click.Group:
    """The root click group with every command registered, as `receiver` runs it."""
    from receiver.cli.main import cli as root

    return root


def option_names(command: click.Command, ctx: click.Context) -> set[str]:
    """Every option spelling a command accepts (including --no-x and help)."""
    names = set(ctx.help_option_names)
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def resolve(args: list[str]) -> click.Command:
    """Resolve ``receiver ARGS`` with click: real subcommands, real options, valid values."""
    assert args, "empty receiver command"
    command: click.Command = cli()
    ctx = click.Context(command, info_name="receiver")
    rest = list(args)
    while isinstance(command, click.Group):
        if rest and rest[0].startswith("-"):
            option = rest[0].split("=", 1)[0]
            assert option in option_names(command, ctx), (
                f"receiver {' '.join(args)}: no option {option} on {ctx.command_path}"
            )
            assert option in ctx.help_option_names, f"group options are not used in manifests: {args}"
            return command
        assert rest, f"receiver {' '.join(args)}: {ctx.command_path} needs a subcommand"
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"receiver {' '.join(args)}: no command {name!r} in {ctx.command_path}"
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    known = option_names(command, ctx)
    for token in rest:
        if token.startswith("--") or (token.startswith("-") and len(token) == 2):
            option = token.split("=", 1)[0]
            assert option in known, f"receiver {' '.join(args)}: {ctx.command_path} has no option {option}"
    if not any(token in ctx.help_option_names for token in rest):
        command.make_context(ctx.info_name, list(rest), parent=ctx.parent)  # raises on bad values
    return command


@functools.cache
def allowed_env_names() -> frozenset[str]:
    """Settings fields (upper-cased), CLI option env twins, and the explicit extras."""
    names = {name.upper() for name in Settings.model_fields}
    names |= EXTRA_ENV_NAMES

    def walk(command: click.Command) -> None:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names.update(envvar)
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    walk(cli())
    return frozenset(names)


def env_keys(environment: Any) -> set[str]:
    """Variable names of a compose `environment` (mapping or list of K=V)."""
    if environment is None:
        return set()
    if isinstance(environment, dict):
        return set(environment)
    return {item.split("=", 1)[0] for item in environment}


def env_file_keys(path: Path) -> dict[str, str]:
    """KEY=value pairs of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    result = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


def dockerfile(instruction: str) -> list[str]:
    """Arguments of every occurrence of one Dockerfile instruction."""
    return [args for name, args in dockerfile_instructions() if name == instruction]


def compose() -> dict[str, Any]:
    """deploy/compose.yaml, merge keys resolved."""
    return load_one(DEPLOY / "compose.yaml")


def receiver_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the receiver image."""
    services = compose()["services"]
    return {
        name: spec
        for name, spec in services.items()
        if isinstance(spec.get("build"), dict) and spec["build"].get("dockerfile") == "deploy/Dockerfile"
    }


def k8s_docs() -> list[dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s (kustomization excluded)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(load_docs(path))
    return docs


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """The one object of this kind and name."""
    found = [doc for doc in k8s_docs() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs() -> list[dict[str, Any]]:
    """Pod specs of every Deployment and Job."""
    return [doc["spec"]["template"]["spec"] for doc in k8s_docs() if doc["kind"] in {"Deployment", "Job"}]


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    """A probe or Service port (number or container port name) as a number."""
    if isinstance(port, int):
        return port
    for entry in container.get("ports", []):
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise AssertionError(f"no container port named {port!r}")


def option_value(args: list[str], option: str) -> str:
    """The value following an option in an argument list."""
    assert option in args, f"{option} missing from {args}"
    return args[args.index(option) + 1]


def metric_names() -> set[str]:
    """Exposed series names of every metric in receiver.metrics (with counter/histogram suffixes)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for metric in value.describe():
                names.update(metric.name + suffix for suffix in suffixes.get(metric.type, ("",)))
    return names


# ---------------------------------------------------------------- all YAML


def test_yaml_files_found() -> None:
    """The deploy tree ships compose, Kubernetes and Prometheus YAML."""
    names = {path.relative_to(DEPLOY).as_posix() for path in YAML_FILES}
    assert {"compose.yaml", "k8s/kustomization.yaml", "prometheus/scrape.yaml", "prometheus/alerts.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    """Every YAML file under deploy/ parses to at least one mapping."""
    docs = load_docs(path)
    assert docs and all(isinstance(doc, dict) for doc in docs)


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_base_and_install() -> None:
    """The image is python:3.11-slim and installs the project editable from the copied tree."""
    assert dockerfile("FROM") == ["python:3.11-slim"]
    copied = " ".join(dockerfile("COPY"))
    for part in ("pyproject.toml", "README.md", "alembic.ini", "receiver/", "migrations/"):
        assert part in copied, f"Dockerfile does not copy {part}"
        assert part in {"README.md"} or (ROOT / part).exists()
    assert any(re.search(r"pip install (.* )?-e \.", run) for run in dockerfile("RUN")), "needs `pip install -e .`"


def test_dockerfile_runs_as_non_root() -> None:
    """The last USER is neither root nor uid 0, and is numeric for runAsNonRoot."""
    users = dockerfile("USER")
    assert users, "Dockerfile has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"


def test_dockerfile_entrypoint_cmd_healthcheck() -> None:
    """ENTRYPOINT is receiver, CMD is the HTTP role, HEALTHCHECK calls /healthz with python, port 8000 exposed."""
    assert [json.loads(args) for args in dockerfile("ENTRYPOINT")] == [["receiver"]]
    cmd = [json.loads(args) for args in dockerfile("CMD")]
    assert cmd == [["serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]]
    assert resolve(cmd[0]).name == "serve"
    (healthcheck,) = dockerfile("HEALTHCHECK")
    assert "/healthz" in healthcheck and "python" in healthcheck and "curl" not in healthcheck
    assert "127.0.0.1:8000" in healthcheck
    assert dockerfile("EXPOSE") == ["8000"]


def test_dockerfile_env() -> None:
    """The image logs JSON, and every ENV it sets is a receiver setting or interpreter tooling."""
    env: dict[str, str] = {}
    for args in dockerfile("ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    assert env.get("LOG_FORMAT") == "json"
    unknown = {key for key in env if not key.startswith(TOOLING_ENV_PREFIXES)} - allowed_env_names()
    assert not unknown, f"Dockerfile ENV not in Settings: {sorted(unknown)}"


def test_dockerignore_keeps_secrets_out() -> None:
    """The Dockerfile's ignore file excludes the venv, git and the compose secrets file."""
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", ".env", "deploy/receiver.env"):
        assert entry in ignored


# ---------------------------------------------------------------- compose


def test_compose_postgres_healthcheck() -> None:
    """PostgreSQL 16 has a pg_isready healthcheck and a volume."""
    postgres = compose()["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres.get("volumes")


def test_compose_migrate_is_one_shot() -> None:
    """migrate runs `receiver migrate` once (no restart) after PostgreSQL is healthy."""
    migrate = compose()["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] in ("no", False)  # unquoted `no` is False to PyYAML
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["receiver", "worker"])
def test_compose_roles_wait_for_migrate(service: str) -> None:
    """receiver and worker start only after migrate completed successfully."""
    spec = compose()["services"][service]
    assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_receiver_and_worker() -> None:
    """The receiver serves without a worker on 8000 with a /readyz healthcheck; the worker runs 2 replicas."""
    services = compose()["services"]
    receiver = services["receiver"]
    assert receiver["command"] == ["serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
    assert any(str(port).endswith("8000") for port in receiver["ports"])
    assert "/readyz" in " ".join(receiver["healthcheck"]["test"])
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["healthcheck"] == {"disable": True}, "the worker serves no HTTP: the image healthcheck must be off"


def test_compose_commands_resolve() -> None:
    """Every compose service on the receiver image runs a real `receiver` command."""
    services = receiver_services()
    assert set(services) == {"migrate", "receiver", "worker"}
    for name, spec in services.items():
        assert "entrypoint" not in spec, f"{name}: keep the image ENTRYPOINT (receiver)"
        resolve(list(spec["command"]))


def test_compose_environment() -> None:
    """Receiver services use the compose database, secrets from receiver.env, and only known variable names."""
    example = DEPLOY / "receiver.env.example"
    example_keys = env_file_keys(example)
    assert SECRET_NAMES <= set(example_keys)
    for name, value in example_keys.items():
        if name in {"DYTE_API_KEY", "API_TOKENS", "DYTE_ORG_ID"}:
            assert value == "" or value.startswith("replace"), f"{example.name}: {name} must be a placeholder"
    for name, spec in receiver_services().items():
        environment = spec["environment"]
        assert environment["DATABASE_URL"] == DATABASE_URL, name
        env_files = spec["env_file"] if isinstance(spec["env_file"], list) else [spec["env_file"]]
        assert "receiver.env" in env_files, name
        unknown = (env_keys(environment) | set(example_keys)) - allowed_env_names()
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"


# ---------------------------------------------------------------- Kubernetes


def test_k8s_kinds() -> None:
    """deploy/k8s holds 2 Deployments, a Job, a Service, a ConfigMap and a Secret."""
    kinds = sorted(doc["kind"] for doc in k8s_docs())
    assert kinds == sorted(["Deployment", "Deployment", "Job", "Service", "ConfigMap", "Secret"])


def test_k8s_kustomization_lists_manifests() -> None:
    """The kustomization lists every manifest except the example Secret, and sets the image."""
    kustomization = load_one(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(resources) == manifests
    assert "secret.example.yaml" not in resources, "applying it would overwrite the real Secret with placeholders"
    assert [image["name"] for image in kustomization["images"]] == [IMAGE]


def test_k8s_receiver_deployment() -> None:
    """The receiver Deployment: 2 replicas, serve --no-worker, probes on the serving port, grace, metrics annotations."""
    deployment = k8s_object("Deployment", "receiver")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    pod = template["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:2] == ["serve", "--no-worker"]
    assert option_value(args, "--host") == "0.0.0.0"
    port = int(option_value(args, "--port"))
    assert port == 8000
    assert [entry["containerPort"] for entry in container["ports"]] == [port]
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz" and resolve_port(container, liveness["port"]) == port
    assert readiness["path"] == "/readyz" and resolve_port(container, readiness["port"]) == port
    assert container["resources"]["requests"] and container["resources"]["limits"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_k8s_worker_deployment() -> None:
    """The worker Deployment runs `receiver worker`, exposes only its metrics port, and has no HTTP probes."""
    deployment = k8s_object("Deployment", "receiver-worker")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker", "--metrics-port", "9100"]
    assert container["resources"]["requests"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert "httpGet" not in container.get(probe, {}), f"worker serves no HTTP API: {probe}"
    assert [p["containerPort"] for p in container["ports"]] == [9100]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9100"


def test_k8s_migrate_job() -> None:
    """The Job runs `receiver migrate` once, without restarting its pod in place."""
    job = k8s_object("Job", "receiver-migrate")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    (container,) = pod["containers"]
    assert container["args"] == ["migrate"]


def test_k8s_pods_non_root_and_configured() -> None:
    """Every pod runs as non-root on the receiver image with the ConfigMap and Secret as environment."""
    config_map = next(doc for doc in k8s_docs() if doc["kind"] == "ConfigMap")["metadata"]["name"]
    secret = next(doc for doc in k8s_docs() if doc["kind"] == "Secret")["metadata"]["name"]
    for pod in pod_specs():
        for container in pod["containers"]:
            security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, container["name"]
            assert security.get("runAsUser", 1) != 0, container["name"]
            assert container["image"].split(":")[0] == IMAGE
            assert "command" not in container, "keep the image ENTRYPOINT (receiver)"
            sources = container["envFrom"]
            assert {"configMapRef": {"name": config_map}} in sources
            assert {"secretRef": {"name": secret}} in sources


def test_k8s_commands_resolve() -> None:
    """Every container's args is a real `receiver` command with real options."""
    commands = [resolve(list(container["args"])).name for pod in pod_specs() for container in pod["containers"]]
    assert sorted(commands) == ["migrate", "serve", "worker"]


def test_k8s_service_targets_receiver() -> None:
    """The ClusterIP Service maps port 80 to the receiver pods' 8000, never to workers."""
    service = k8s_object("Service", "receiver")
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    receiver = k8s_object("Deployment", "receiver")["spec"]["template"]
    (container,) = receiver["spec"]["containers"]
    assert resolve_port(container, port["targetPort"]) == 8000
    selector = service["spec"]["selector"].items()
    assert selector <= receiver["metadata"]["labels"].items()
    worker_labels = k8s_object("Deployment", "receiver-worker")["spec"]["template"]["metadata"]["labels"]
    assert not selector <= worker_labels.items()


def test_k8s_environment_names() -> None:
    """ConfigMap and Secret keys and container env names are Settings fields (or allowed extras)."""
    names: set[str] = set()
    for doc in k8s_docs():
        if doc["kind"] in {"ConfigMap", "Secret"}:
            names |= set(doc.get("data") or {}) | set(doc.get("stringData") or {})
    for pod in pod_specs():
        for container in pod["containers"]:
            names |= {entry["name"] for entry in container.get("env", [])}
    assert "DATABASE_URL" in names and SECRET_NAMES <= names
    unknown = names - allowed_env_names()
    assert not unknown, f"not Settings fields: {sorted(unknown)}"


def test_k8s_secret_is_placeholder() -> None:
    """The example Secret holds placeholders only and says so."""
    text = (K8S / "secret.example.yaml").read_text(encoding="utf-8")
    assert "EXAMPLE" in text
    secret = k8s_object("Secret", "receiver-secrets")
    for key, value in secret["stringData"].items():
        assert value == "" or "replace" in value or "CHANGE-ME" in value, key


# ---------------------------------------------------------------- Prometheus


def test_prometheus_scrape_config() -> None:
    """The scrape config has a static compose target and a Kubernetes pod discovery job on /metrics."""
    config = load_one(PROMETHEUS / "scrape.yaml")
    jobs = config["scrape_configs"]
    static = [job for job in jobs if "static_configs" in job]
    discovered = [job for job in jobs if "kubernetes_sd_configs" in job]
    assert static and discovered
    assert static[0]["metrics_path"] == "/metrics"
    assert static[0]["static_configs"][0]["targets"] == ["receiver:8000"]
    assert "alerts.yaml" in config["rule_files"]


def test_prometheus_alerts_use_real_metrics() -> None:
    """Alert expressions name only metrics from receiver.metrics and real queue statuses."""
    known = metric_names()
    rules = [rule for group in load_one(PROMETHEUS / "alerts.yaml")["groups"] for rule in group["rules"]]
    assert 2 <= len(rules) <= 5
    for rule in rules:
        assert rule["alert"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
        used = set(re.findall(r"\breceiver_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']}: unknown metrics {sorted(used - known)}"
        for status in re.findall(r'status="([^"]+)"', rule["expr"]):
            assert status in EVENT_STATUSES


# ---------------------------------------------------------------- docs and comments


def test_quoted_commands_resolve() -> None:
    """Every `receiver ...` command quoted in deploy/ (README, comments, alert texts) is a real command."""
    quoted = []
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.relative_to(DEPLOY).parts[0] != "postgres" and path.suffix in {".md", ".yaml", ""}:
            quoted += re.findall(r"`receiver ([^`]+)`", path.read_text(encoding="utf-8"))
    assert len(quoted) >= 5
    for command in quoted:
        resolve(shlex.split(command))


def test_readme_covers_operations() -> None:
    """deploy/README.md explains the Kubernetes apply, the compose build and the Dyte webhook URL."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for needle in (
        "kubectl apply -k deploy/k8s",
        "docker build -f deploy/Dockerfile",
        "docker compose -f deploy/compose.yaml",
        "PUBLIC_URL/webhooks/dyte",
    ):
        assert needle in text, needle
