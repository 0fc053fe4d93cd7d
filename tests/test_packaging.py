"""The package as users install it today: from a wheel or an sdist built from this clone.

crossgate is not on PyPI yet; the README says to build it (``python -m build``) and install
the result. This builds both, runs ``twine check`` on them, and installs each into a clean
virtual environment of its own (its one dependency, asgiref, comes from the package
index), where ``import crossgate`` and the ``crossgate`` command must work.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import crossgate
from tests.integration.support import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built from this clone (no isolation: hatchling is here)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_version_is_written_once(dist: dict[str, Path]) -> None:
    """pyproject.toml takes it from crossgate.__version__ (hatch's version source)."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r"^version\s*=", pyproject, re.MULTILINE) is None
    assert 'dynamic = ["version"]' in pyproject
    for artifact in dist.values():
        assert f"crossgate-{crossgate.__version__}" in artifact.name


def test_twine_check_passes(dist: dict[str, Path]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.values())],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_wheel_holds_the_package_and_its_type_marker(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    assert "crossgate/__init__.py" in names
    assert "crossgate/py.typed" in names
    assert "crossgate/adapters/_bridge/pool.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_it_installs_into_a_clean_venv_and_runs(
    dist: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(dist[kind]),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import crossgate, sys; print(crossgate.__version__, crossgate.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not the clone: the installed package must be the one imported
        check=True,
    )
    version, location = probe.stdout.split()
    assert version == crossgate.__version__
    assert location.startswith(str(env_dir))
    command = subprocess.run(
        [str(env_dir / "bin" / "crossgate"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert command.stdout.strip() == f"crossgate {crossgate.__version__}"
