"""`items-service` as a command line: its commands, help, version, and what it refuses."""

import subprocess
import sys
from pathlib import Path

import pytest

from servers import service_env


def items_service(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *arguments],
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = items_service("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: items-service [-h] [--version] COMMAND ...")
    for command in ("serve", "check", "copy"):
        assert f"\n    {command} " in result.stdout
    # Help serves nothing, and migrates nothing.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["serve", "check", "copy"])
def test_each_command_has_its_own_help(tmp_path: Path, command: str) -> None:
    result = items_service(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: items-service {command} [-h]")
    assert list(tmp_path.iterdir()) == []


def test_version(tmp_path: Path) -> None:
    result = items_service("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "items-service 0.1.0\n")


@pytest.mark.parametrize(
    ("arguments", "usage", "error"),
    [
        (["chek"], "usage: items-service [-h]", "invalid choice: 'chek'"),
        (["--port"], "usage: items-service [-h]", "unrecognized arguments: --port"),
        (["check", "--jsn"], "usage: items-service check [-h]", "unrecognized arguments: --jsn"),
        (["copy"], "usage: items-service copy [-h]", "the following arguments are required: --to"),
    ],
)
def test_an_unknown_command_or_flag_is_refused_with_the_usage(
    tmp_path: Path, arguments: list[str], usage: str, error: str
) -> None:
    result = items_service(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(usage)
    assert error in result.stderr
    assert list(tmp_path.iterdir()) == []
