"""Static checks of compose.yaml, the Dockerfile and .dockerignore against the code.

Nothing here needs Docker: the files are parsed and compared with the settings classes,
the CLI subcommands and the Kafka version the local dev stack resolves, so that the
Docker set-up fails a test as soon as it drifts from the code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from inferhook.settings import Settings, WebhookSettings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"
KAFKA_POM = REPO / "cli" / "infra" / "kafka-pom.xml"
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

APP_IMAGE = "inferhook:dev"
INFRA_SERVICES = frozenset({"kafka", "postgres"})
APP_SERVICES = frozenset({"migrate", "ingest", "executor", "dispatcher"})
EXPECTED_SERVICES = INFRA_SERVICES | APP_SERVICES

# Subcommands of the `inferhook` console script (words after `inferhook`).
CLI_SUBCOMMANDS: tuple[tuple[str, ...], ...] = (
    ("ingest",),
    ("executor",),
    ("dispatcher",),
    ("migrate",),
    ("models", "build"),
    ("keys", "create"),
)


# --------------------------------------------------------------------------- helpers


def _load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _load_compose().get("services")
    assert isinstance(services, dict), "compose.yaml has no `services` mapping"
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, whichever compose syntax it uses."""
    raw = service.get("environment") or {}
    env: dict[str, str] = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            env[str(key)] = "" if value is None else str(value)
    elif isinstance(raw, list):
        for item in raw:
            key, _, value = str(item).partition("=")
            env[key] = value
    else:
        raise AssertionError(f"unsupported environment syntax: {raw!r}")
    return env


def _command(service: dict[str, Any]) -> list[str]:
    raw = service.get("command")
    if isinstance(raw, str):
        return shlex.split(raw)
    if isinstance(raw, list):
        return [str(part) for part in raw]
    raise AssertionError(f"service has no command: {service!r}")


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Ports a service exposes inside the compose network (`expose` and `ports` targets)."""
    ports: set[int] = set()
    for entry in service.get("expose") or []:
        ports.add(int(str(entry).split("/")[0]))
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port for short-syntax `ports` entries."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            target = int(entry["target"])
            mapping[target] = int(entry.get("published") or target)
            continue
        parts = str(entry).split("/")[0].split(":")
        mapping[int(parts[-1])] = int(parts[-2]) if len(parts) >= 2 else int(parts[-1])
    return mapping


def _is_settings_class(annotation: object) -> TypeGuard[type[BaseSettings]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseSettings)


def _setting_env_names(cls: type[BaseSettings]) -> set[str]:
    """Every INFERHOOK_* variable the settings class (and its sections) read."""
    assert not cls.model_config.get("case_sensitive"), f"{cls.__name__} is case sensitive"
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        annotation = field.annotation
        if _is_settings_class(annotation):
            names |= _setting_env_names(annotation)
            continue
        names.add(f"{prefix}{field_name}".upper())
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias.upper())
    return names


def _subcommand_of(command: list[str]) -> tuple[str, ...] | None:
    if not command or command[0] != "inferhook":
        return None
    for sub in CLI_SUBCOMMANDS:
        if tuple(command[1 : 1 + len(sub)]) == sub:
            return sub
    return None


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        logical.append(pending)
    result: list[tuple[str, str]] = []
    for entry in logical:
        instruction, _, args = entry.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


VALID_ENV_NAMES: frozenset[str] = frozenset(_setting_env_names(Settings))


# ----------------------------------------------------------------------------- tests


def test_settings_introspection_finds_the_known_variables() -> None:
    # Guards the helper itself: if it found nothing, test (b) would pass vacuously.
    for name in (
        "INFERHOOK_HOST",
        "INFERHOOK_PORT",
        "INFERHOOK_KAFKA_BOOTSTRAP",
        "INFERHOOK_DATABASE_URL",
        "INFERHOOK_WEBHOOK_RETRY_SCHEDULE",
        "INFERHOOK_WEBHOOK_ALLOW_NETS",
    ):
        assert name in VALID_ENV_NAMES
    # The nested section fields themselves are not plain variables.
    for section in ("INFERHOOK_KAFKA", "INFERHOOK_DATABASE", "INFERHOOK_WEBHOOK"):
        assert section not in VALID_ENV_NAMES


def test_expected_services_exist() -> None:
    services = _services()
    missing = EXPECTED_SERVICES - services.keys()
    assert not missing, f"compose.yaml lacks services: {sorted(missing)}"


def test_shared_environment_anchor_exists() -> None:
    shared = _load_compose().get("x-inferhook-env")
    assert isinstance(shared, dict), "x-inferhook-env (the &inferhook-env anchor) is missing"
    for name in (
        "INFERHOOK_KAFKA_BOOTSTRAP",
        "INFERHOOK_DATABASE_URL",
        "INFERHOOK_WEBHOOK_RETRY_SCHEDULE",
        "INFERHOOK_WEBHOOK_ALLOW_NETS",
    ):
        assert name in shared, f"x-inferhook-env lacks {name}"
    services = _services()
    for name in sorted(APP_SERVICES):
        env = _environment(services[name])
        for key, value in shared.items():
            assert env.get(key) == ("" if value is None else str(value)), (
                f"{name} does not carry the shared {key}"
            )


def test_every_inferhook_variable_is_read_by_settings() -> None:
    unknown: list[str] = []
    for service_name, service in _services().items():
        for key in _environment(service):
            if key.upper().startswith("INFERHOOK_") and key.upper() not in VALID_ENV_NAMES:
                unknown.append(f"{service_name}: {key}")
    assert not unknown, f"variables no setting reads: {unknown}; valid: {sorted(VALID_ENV_NAMES)}"


def test_kafka_bootstrap_points_at_the_kafka_service() -> None:
    services = _services()
    kafka_env = _environment(services["kafka"])
    advertised = {
        entry.split("://", 1)[1]
        for entry in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if "://" in entry
    }
    listener_ports = {
        int(entry.rsplit(":", 1)[1])
        for entry in kafka_env["KAFKA_LISTENERS"].split(",")
        if ":" in entry
    }
    for name in sorted(APP_SERVICES):
        bootstrap = _environment(services[name]).get("INFERHOOK_KAFKA_BOOTSTRAP", "")
        servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
        assert servers, f"{name} sets no INFERHOOK_KAFKA_BOOTSTRAP"
        for server in servers:
            host, _, port_text = server.rpartition(":")
            port = int(port_text)
            assert host == "kafka", f"{name}: bootstrap {server} is not the kafka service"
            assert port in _container_ports(services[host]), f"{name}: kafka does not expose {port}"
            assert port in listener_ports, f"{name}: kafka does not listen on {port}"
            assert server in advertised, f"{name}: {server} is not an advertised listener"


def test_database_url_points_at_the_postgres_service() -> None:
    services = _services()
    postgres = services["postgres"]
    pg_env = _environment(postgres)
    for name in sorted(APP_SERVICES):
        url = _environment(services[name]).get("INFERHOOK_DATABASE_URL", "")
        parts = urlsplit(url)
        assert parts.scheme == "postgresql", f"{name}: {url} is not a postgresql:// URL"
        assert parts.hostname == "postgres", f"{name}: {url} is not the postgres service"
        assert (parts.port or 5432) in _container_ports(postgres), (
            f"{name}: postgres does not expose {parts.port}"
        )
        assert parts.username == pg_env["POSTGRES_USER"]
        assert parts.password == pg_env["POSTGRES_PASSWORD"]
        assert parts.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_ingest_listens_where_it_is_published() -> None:
    ingest = _services()["ingest"]
    env = _environment(ingest)
    assert env["INFERHOOK_HOST"] == "0.0.0.0"
    port = int(env["INFERHOOK_PORT"])
    assert _published_ports(ingest).get(port) == 8080, "ingest's port is not published as 8080"


def test_app_services_run_cli_subcommands() -> None:
    services = _services()
    app_like = {
        name
        for name, service in services.items()
        if "build" in service or service.get("image") == APP_IMAGE
    }
    assert app_like == APP_SERVICES
    for name in sorted(app_like):
        service = services[name]
        command = _command(service)
        sub = _subcommand_of(command)
        assert sub is not None, f"{name}: {command} is not an inferhook subcommand"
        assert sub == (name,), f"service {name} runs {command}"
        build = service["build"]
        context = build.get("context") if isinstance(build, dict) else build
        assert context == ".", f"{name} does not build the repository root"
        assert service.get("image") == APP_IMAGE


def test_dependencies_wait_for_health_and_migrations() -> None:
    services = _services()

    def conditions(name: str) -> dict[str, str]:
        depends = services[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must use the long syntax"
        return {dep: str(spec.get("condition")) for dep, spec in depends.items()}

    assert conditions("migrate").get("postgres") == "service_healthy"
    for name in ("ingest", "executor", "dispatcher"):
        deps = conditions(name)
        assert deps.get("kafka") == "service_healthy", name
        assert deps.get("migrate") == "service_completed_successfully", name
    for name in sorted(services):
        for dep, condition in conditions(name).items():
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    kafka_check = services["kafka"]["healthcheck"]["test"]
    kafka_check_text = kafka_check if isinstance(kafka_check, str) else " ".join(kafka_check)
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in kafka_check_text
    assert "--bootstrap-server localhost:9092" in kafka_check_text


@pytest.mark.parametrize("service_name", sorted(APP_SERVICES))
def test_settings_build_from_compose_environment(
    service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.upper().startswith("INFERHOOK_"):
            monkeypatch.delenv(key)
    env = _environment(_services()[service_name])
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    settings = Settings()

    assert settings.kafka.bootstrap == "kafka:9092"
    schedule = settings.webhook.retry_schedule
    assert len(schedule) == 8
    assert all(isinstance(delay, float) for delay in schedule)
    assert schedule == WebhookSettings.model_fields["retry_schedule"].default
    assert settings.webhook.allow_nets == []
    assert settings.database.url.get_secret_value() == env["INFERHOOK_DATABASE_URL"]
    if service_name == "ingest":
        assert settings.host == "0.0.0.0"
        assert settings.port == 8080


def test_kafka_image_matches_local_broker_version() -> None:
    image = str(_services()["kafka"]["image"])
    repository, _, tag = image.rpartition(":")
    assert repository == "apache/kafka", image
    root = ET.parse(KAFKA_POM).getroot()
    version = root.findtext("m:properties/m:kafka.version", namespaces=POM_NS)
    assert version, "kafka.version missing from kafka-pom.xml"
    assert tag == version.strip(), f"compose runs Kafka {tag}, the local stack {version}"


def test_dockerfile_builds_and_runs_the_app() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0][0] in {"FROM", "ARG"}
    froms = [args for instr, args in instructions if instr == "FROM"]
    assert froms and froms[0].startswith("python:3.11-slim")

    runs = [args for instr, args in instructions if instr == "RUN"]
    assert any(re.search(r"pip install [\"']?\.\[build-models\]", run) for run in runs)
    assert any("inferhook models build" in run for run in runs)

    users = [args for instr, args in instructions if instr == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "image must not run as root"

    cmds = [args for instr, args in instructions if instr == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    cmd = json.loads(cmds[-1]) if cmds[-1].startswith("[") else shlex.split(cmds[-1])
    assert _subcommand_of(cmd) == ("ingest",)

    # Every package pyproject.toml ships is copied in before `pip install .`.
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    copied = {
        src.rstrip("/")
        for instr, args in instructions
        if instr == "COPY"
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert packages <= copied, f"Dockerfile does not copy {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied

    env_names = set(re.findall(r"\b(INFERHOOK_[A-Z0-9_]+)=", DOCKERFILE.read_text("utf-8")))
    assert env_names <= VALID_ENV_NAMES, f"unknown variables: {env_names - VALID_ENV_NAMES}"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", ".state", ".git", "bench/results", "tests"):
        assert required in patterns, f".dockerignore does not exclude {required}"
    assert any("__pycache__" in pattern for pattern in patterns)
