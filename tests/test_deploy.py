"""Static checks of deploy/: the Dockerfile, compose, Kubernetes and Prometheus files.

No Docker engine or cluster is needed: files are parsed and their structure,
the ``receiver`` commands they run (resolved against the real click CLI), the
environment variable names (against :class:`receiver.settings.Settings`) and
the metric names (against :mod:`receiver.metrics`) are checked; so are the
lock file against ``pyproject.toml`` and the alerts against docs/runbook.md.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from prometheus_client.metrics import MetricWrapperBase

from receiver import metrics
from receiver.db.models import EVENT_STATUSES
from receiver.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
LOCK = ROOT / "requirements.lock"
RUNBOOK = ROOT / "docs" / "runbook.md"

# deploy/postgres/ belongs to the database setup, not to the receiver image.
YAML_FILES = sorted(
    path
    for path in [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    if not path.relative_to(DEPLOY).parts[0] == "postgres"
)

# The compose database URL: the password comes from deploy/.env, never from the file.
DATABASE_URL = re.compile(r"postgresql\+psycopg://receiver:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/receiver")
REQUIRED_PASSWORD = re.compile(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}")
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


def locked_pins() -> dict[str, tuple[Version, str]]:
    """requirements.lock as ``{canonical name: (version, marker text)}``; every pin must carry hashes."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, tuple[Version, str]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, _, rest = line.partition(" --hash=")
        assert rest, f"requirements.lock: {requirement} has no --hash"
        parsed = Requirement(requirement.strip())
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", f"requirements.lock: {requirement} is not pinned with =="
        pins[canonicalize_name(parsed.name)] = (Version(specifier.version), str(parsed.marker or ""))
    return pins


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped, spaces to hyphens)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> dict[str, str]:
    """``{anchor: heading}`` of the level-2 headings of docs/runbook.md."""
    headings = re.findall(r"^## (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    return {github_anchor(heading): heading for heading in headings}


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of prometheus/alerts.yaml."""
    return [rule for group in load_one(PROMETHEUS / "alerts.yaml")["groups"] for rule in group["rules"]]


def template_labels(kind: str, name: str) -> dict[str, str]:
    """Pod template labels of a Deployment or Job."""
    return k8s_object(kind, name)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions In) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In expressions are used here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


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
    """python:3.11-slim; dependencies from the lock (hashes) in a layer before any code; then a plain install.

    The dependency layer's only input is requirements.lock, so a code change
    reuses it from the cache; the project is installed non-editable without
    dependencies, from a tree that includes setup.py and migrations/.
    """
    assert dockerfile("FROM") == ["python:3.11-slim"]
    steps = [(name, args) for name, args in dockerfile_instructions() if name in {"COPY", "RUN"}]
    lock_install = next(
        i
        for i, (name, args) in enumerate(steps)
        if name == "RUN" and "--require-hashes" in args and "requirements.lock" in args
    )
    before = [args for name, args in steps[:lock_install] if name == "COPY"]
    assert before == ["requirements.lock /tmp/requirements.lock"], f"only the lock is copied before it: {before}"
    after = " ".join(args for name, args in steps[lock_install:] if name == "COPY")
    for part in ("pyproject.toml", "setup.py", "README.md", "receiver/", "migrations/"):
        assert part in after, f"Dockerfile does not copy {part}"
        assert (ROOT / part).exists(), part
    (install,) = [args for name, args in steps[lock_install + 1 :] if name == "RUN" and "pip install" in args]
    assert "--no-deps" in install and not re.search(r"\s-e\s|--editable", install), "plain install, no dependencies"
    assert "pip check" in install and "head_revision" in install, (
        "the build checks dependencies and packaged migrations"
    )


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
    """The receiver serves without a worker on 8000 with a /readyz healthcheck; 2 workers, healthy by their metrics port."""
    services = compose()["services"]
    receiver = services["receiver"]
    assert receiver["command"] == ["serve", "--no-worker", "--host", "0.0.0.0", "--port", "8000"]
    assert any(str(port).endswith(":8000") for port in receiver["ports"])
    assert "/readyz" in " ".join(receiver["healthcheck"]["test"])
    worker = services["worker"]
    assert worker["command"] == ["worker", "--metrics-port", "9100"]
    assert worker["deploy"]["replicas"] == 2
    assert "ports" not in worker, "the workers' metrics stay on the compose network"
    assert "127.0.0.1:9100/metrics" in " ".join(worker["healthcheck"]["test"])


def test_compose_ports_bound_to_loopback() -> None:
    """Every published port binds 127.0.0.1 unless the operator sets a variable; PostgreSQL publishes none."""
    services = compose()["services"]
    assert "ports" not in services["postgres"]
    published = [str(port) for spec in services.values() for port in spec.get("ports", [])]
    assert published
    for port in published:
        # HOST:PUBLISHED:TARGET, where HOST and PUBLISHED may be ${VAR:-default}.
        match = re.fullmatch(r"(\$\{[^}]+\}|[\d.]+):(\$\{[^}]+\}|\d+):(\d+)", port)
        assert match, f"{port}: no host address (Docker would publish on every interface)"
        host = match.group(1)
        assert host == "127.0.0.1" or re.fullmatch(r"\$\{[A-Z_]+:-127\.0\.0\.1\}", host), port


def test_compose_has_no_literal_password() -> None:
    """The database password is a required variable (`${POSTGRES_PASSWORD:?...}`), never written in compose.yaml."""
    services = compose()["services"]
    assert REQUIRED_PASSWORD.fullmatch(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert not re.search(r"receiver:receiver@|PASSWORD:\s*[\w-]+\s*$", text, re.MULTILINE)
    example = env_file_keys(DEPLOY / "compose.env.example")
    assert example["POSTGRES_PASSWORD"] == "", "the example leaves the password empty"
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored and "receiver.env" in ignored


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
        assert DATABASE_URL.fullmatch(environment["DATABASE_URL"]), name
        env_files = spec["env_file"] if isinstance(spec["env_file"], list) else [spec["env_file"]]
        assert "receiver.env" in env_files, name
        unknown = (env_keys(environment) | set(example_keys)) - allowed_env_names()
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"


# ---------------------------------------------------------------- Kubernetes


def test_k8s_kinds() -> None:
    """deploy/k8s: 2 Deployments, a Job, a Service, a ConfigMap, a Secret, 2 Ingresses, 2 HPAs, 2 PDBs, NetworkPolicies."""
    kinds = sorted(doc["kind"] for doc in k8s_docs())
    expected = ["Deployment", "Deployment", "Job", "Service", "ConfigMap", "Secret", "Ingress", "Ingress"]
    expected += ["HorizontalPodAutoscaler"] * 2 + ["PodDisruptionBudget"] * 2
    assert [kind for kind in kinds if kind != "NetworkPolicy"] == sorted(expected)
    assert kinds.count("NetworkPolicy") >= 3


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
    assert "replicas" not in deployment["spec"], "the HPA owns replicas (a re-apply would reset them)"
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
    """The worker runs `receiver worker`, exposes only its metrics port and is probed for liveness on that port."""
    deployment = k8s_object("Deployment", "receiver-worker")
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "worker"
    port = int(option_value(args, "--metrics-port"))
    assert [p["containerPort"] for p in container["ports"]] == [port] == [9100]
    assert container["resources"]["requests"]
    liveness = container["livenessProbe"]["httpGet"]
    assert liveness["path"] == "/metrics" and resolve_port(container, liveness["port"]) == port
    assert "readinessProbe" not in container, "no Service sends the worker traffic"
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


def ingress_paths(ingress: dict[str, Any]) -> list[str]:
    """Every path of an Ingress, after checking each goes to Service receiver's port."""
    service = k8s_object("Service", "receiver")
    service_ports = {port["name"] for port in service["spec"]["ports"]} | {
        port["port"] for port in service["spec"]["ports"]
    }
    paths = []
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}, "every host has TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "receiver"
            assert backend["port"].get("name", backend["port"].get("number")) in service_ports
            paths.append(path["path"])
    return paths


def test_k8s_public_ingress_exposes_only_webhooks() -> None:
    """The public Ingress routes /webhooks/ alone, over TLS issued by cert-manager."""
    ingress = k8s_object("Ingress", "receiver-public")
    assert ingress_paths(ingress) == ["/webhooks/"]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["pathType"] == "Prefix"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    assert all(tls["secretName"] for tls in ingress["spec"]["tls"])
    # /webhooks/dyte, the route Dyte calls, is under it; the reports and operations routes are not.
    for private in ("/api", "/ui", "/metrics", "/readyz", "/healthz"):
        assert not private.startswith("/webhooks/")


def test_k8s_internal_ingress_for_api_ui_and_operations() -> None:
    """/api, /ui, /metrics and /readyz go through a separate Ingress on another (internal) class, with TLS."""
    internal = k8s_object("Ingress", "receiver-internal")
    public = k8s_object("Ingress", "receiver-public")
    assert set(ingress_paths(internal)) == {"/api", "/ui", "/metrics", "/readyz"}
    assert internal["spec"]["ingressClassName"] != public["spec"]["ingressClassName"]
    hosts = lambda ingress: {rule["host"] for rule in ingress["spec"]["rules"]}  # noqa: E731
    assert not hosts(internal) & hosts(public)


def test_k8s_pod_disruption_budgets() -> None:
    """One PDB keeps a receiver up, one lets workers drain one at a time; each selects its Deployment's pods only."""
    receiver = k8s_object("PodDisruptionBudget", "receiver")["spec"]
    worker = k8s_object("PodDisruptionBudget", "receiver-worker")["spec"]
    assert receiver["minAvailable"] >= 1
    assert worker["maxUnavailable"] == 1
    server_labels = template_labels("Deployment", "receiver")
    worker_labels = template_labels("Deployment", "receiver-worker")
    assert selects(receiver["selector"], server_labels) and not selects(receiver["selector"], worker_labels)
    assert selects(worker["selector"], worker_labels) and not selects(worker["selector"], server_labels)


def test_k8s_autoscalers() -> None:
    """Receiver HPA on CPU; worker HPA on the backlog gauge of receiver.metrics via an External metric (prometheus-adapter)."""
    receiver = k8s_object("HorizontalPodAutoscaler", "receiver")["spec"]
    assert receiver["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "receiver"}
    assert 2 <= receiver["minReplicas"] < receiver["maxReplicas"]
    (cpu,) = receiver["metrics"]
    assert cpu["type"] == "Resource" and cpu["resource"]["name"] == "cpu"

    worker = k8s_object("HorizontalPodAutoscaler", "receiver-worker")["spec"]
    assert worker["scaleTargetRef"]["name"] == "receiver-worker"
    assert 1 <= worker["minReplicas"] < worker["maxReplicas"]
    (backlog,) = worker["metrics"]
    assert backlog["type"] == "External"
    metric = backlog["external"]["metric"]
    # receiver_queue_depth: a gauge of receiver/metrics.py, exported by the receiver pods.
    assert metric["name"] == metrics.QUEUE_DEPTH.describe()[0].name
    assert metric["name"] in metric_names()
    assert metric["selector"]["matchLabels"]["status"] in EVENT_STATUSES
    assert float(backlog["external"]["target"]["averageValue"]) > 0

    adapter = load_one(PROMETHEUS / "adapter-rules.yaml")["rules"]["external"]
    assert [rule["name"]["as"] for rule in adapter] == [metric["name"]]
    assert metric["name"] in adapter[0]["seriesQuery"] and adapter[0]["metricsQuery"].startswith("max")


def network_policies() -> dict[str, dict[str, Any]]:
    """NetworkPolicies by name."""
    return {doc["metadata"]["name"]: doc["spec"] for doc in k8s_docs() if doc["kind"] == "NetworkPolicy"}


def rules_for(labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
    """Every ingress or egress rule of the policies selecting pods with these labels."""
    return [
        rule
        for spec in network_policies().values()
        if selects(spec["podSelector"], labels) and direction.capitalize() in spec["policyTypes"]
        for rule in spec.get(direction, [])
    ]


def rule_ports(rules: list[dict[str, Any]]) -> set[int | str]:
    return {port["port"] for rule in rules for port in rule.get("ports", [])}


def test_k8s_network_policies() -> None:
    """Default deny; only the ingress controller (and Prometheus) reach the receiver's port; workers reach the DB and the API."""
    policies = network_policies()
    server = template_labels("Deployment", "receiver")
    worker = template_labels("Deployment", "receiver-worker")
    migrate = template_labels("Job", "receiver-migrate")
    deny = [spec for spec in policies.values() if not spec.get("ingress") and not spec.get("egress")]
    assert any(
        set(spec["policyTypes"]) == {"Ingress", "Egress"}
        and all(selects(spec["podSelector"], l) for l in (server, worker, migrate))  # noqa: E741
        for spec in deny
    ), "a default-deny policy covers every receiver pod"

    server_in = rules_for(server, "ingress")
    assert rule_ports(server_in) == {"http"}  # the container port named http: 8000
    sources = [peer for rule in server_in for peer in rule["from"]]
    assert all("ipBlock" not in peer and peer.get("namespaceSelector") for peer in sources), "no address ranges"
    namespaces = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in sources}
    assert "ingress-nginx" in namespaces and namespaces <= {"ingress-nginx", "monitoring"}

    assert rule_ports(rules_for(worker, "ingress")) == {"metrics"}
    worker_out = rule_ports(rules_for(worker, "egress"))
    assert {5432, 443, 53} <= worker_out, "workers reach PostgreSQL, the provider API (HTTPS) and DNS"
    assert 443 not in rule_ports(rules_for(migrate, "egress")), "the migrate Job needs only the database"

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


# Queue-status labels are EVENT_STATUSES; events_processed_total's results; HTTP/REST statuses are numbers.
PROCESSING_RESULTS = {"done", "ignored", "failed", "dead"}


def test_prometheus_alerts_use_real_metrics() -> None:
    """At least ten alerts, over metrics from receiver.metrics (and Prometheus' own `up` for targets down)."""
    known = metric_names()
    rules = alert_rules()
    assert len(rules) >= 10
    assert len({rule["alert"] for rule in rules}) == len(rules), "alert names are unique"
    for rule in rules:
        assert (
            rule["alert"] and rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]
        )
        used = set(re.findall(r"\breceiver_[a-z_]+", rule["expr"]))
        uses_up = bool(re.search(r"\bup\{component=\"(server|worker)\"\}", rule["expr"]))
        assert used or uses_up, rule["alert"]
        assert used <= known, f"{rule['alert']}: unknown metrics {sorted(used - known)}"
        if "receiver_queue_depth" in rule["expr"]:
            for status in re.findall(r'status="([^"]+)"', rule["expr"]):
                assert status in EVENT_STATUSES
        for result in re.findall(r'result="([^"]+)"', rule["expr"]):
            assert result in PROCESSING_RESULTS


def test_prometheus_alerts_cover_the_incidents() -> None:
    """Down, 5xx, 503, backlog, dead events, reconciliation, provider 401 and 429, subscription, keys: each has an alert."""
    expressions = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    needles = {
        "service down": r"\bup\{component=\"server\"\}",
        "5xx rate": r'status=~"5\.\."',
        "503 rate": r'receiver_rejected_requests_total\{status="503"\}',
        "backlog": r"receiver_oldest_pending_event_age_seconds",
        "dead events": r'receiver_queue_depth\{status="dead"\}',
        "provider 401": r'status=~"401\|403"',
        "provider 429": r'status="429"',
        "subscription": r'endpoint=~"/webhooks',
        "signing keys": r"receiver_signature_failures_total",
        "reconciliation": r"receiver_dyte_api_calls_total\{status!~",
    }
    for incident, needle in needles.items():
        assert any(re.search(needle, expr) for expr in expressions.values()), incident


def test_every_alert_has_a_runbook_entry() -> None:
    """Each alert's runbook_url points at an existing heading of docs/runbook.md, and each entry belongs to an alert."""
    anchors = runbook_anchors()
    alerts = alert_rules()
    linked = set()
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("https://") and "/docs/runbook.md#" in url, rule["alert"]
        anchor = url.rsplit("#", 1)[1]
        assert anchor == github_anchor(rule["alert"]), f"{rule['alert']}: the entry is named after the alert"
        assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in docs/runbook.md"
        linked.add(anchor)
    assert set(anchors) - linked == {"database-disk"}, "a runbook entry without an alert"
    text = RUNBOOK.read_text(encoding="utf-8")
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading = section.splitlines()[0]
        for part in ("**Meaning.**", "**First checks.**", "**Fix.**"):
            assert part in section, f"runbook {heading}: missing {part}"
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"runbook link to missing #{target}"


# ---------------------------------------------------------------- docs and comments


def test_quoted_commands_resolve() -> None:
    """Every `receiver ...` command quoted in deploy/ (README, comments, alert texts) and the runbook is a real command."""
    quoted = re.findall(r"`receiver ([^`]+)`", RUNBOOK.read_text(encoding="utf-8"))
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


# ---------------------------------------------------------------- lock file


def test_lock_file_matches_pyproject() -> None:
    """Every [project].dependencies entry is pinned in requirements.lock, with hashes, at a version it allows.

    The Dockerfile installs from the lock alone; regenerate it after editing
    the dependencies (the command is in its header and deploy/README.md).
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = locked_pins()
    header = LOCK.read_text(encoding="utf-8").splitlines()[:3]
    assert any("uv pip compile pyproject.toml" in line and "--generate-hashes" in line for line in header)
    image = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock"
        version, marker = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} violates {requirement.specifier}"
        )
        assert not marker or Marker(marker).evaluate(image), f"{name} is not installed on the image's platform"
    # The extras the project asks for are locked too (uvicorn[standard], psycopg[binary]).
    for extra_package in ("uvloop", "httptools", "psycopg-binary"):
        assert extra_package in pins, extra_package
