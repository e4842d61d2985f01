"""Shared fixtures: real sample photos, edits made in code, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from takeback.samples import SAMPLE_PHOTOS, sample_photo
from takeback.threads import limit_blas_threads

# As the takeback command does: small products on one BLAS thread.
limit_blas_threads()

#: Real photos shipped inside scikit-image that are never registered in tests.
UNRELATED_PHOTOS = ("hubble_deep_field.jpg", "retina.jpg", "motorcycle_right.png")


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Registered-in-tests sample photos, by file name."""
    return {name: sample_photo(name) for name in SAMPLE_PHOTOS}


@pytest.fixture(scope="session")
def unrelated() -> dict[str, Path]:
    return {name: sample_photo(name) for name in UNRELATED_PHOTOS}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture
def bank_dir(tmp_path: Path) -> Path:
    return tmp_path / "bank"


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., CliResult]:
    """Run the real ``takeback`` command in a subprocess with a private home."""
    home = tmp_path / "home"

    def run(
        *args: str | os.PathLike[str],
        env: dict[str, str] | None = None,
        drop_root_override: bool = False,
        timeout: float = 120,
    ) -> CliResult:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("TAKEBACK_")}
        environ["TAKEBACK_HOME"] = str(home)
        environ["COLUMNS"] = "200"
        environ.update(env or {})
        command = [sys.executable, "-m", "takeback", *map(str, args)]
        if drop_root_override and os.geteuid() == 0:
            # Without these capabilities root obeys file permissions like anyone else.
            command = [
                "setpriv",
                "--bounding-set",
                "-dac_override,-dac_read_search",
                "--",
                *command,
            ]
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environ,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
