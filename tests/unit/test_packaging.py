"""The Docker build context and the package list agree: every package the project installs (and
fleetctl imports) is let into the image."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_docker_context_holds_every_installed_package() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    allowed = {line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert packages <= allowed, f"missing from .dockerignore: {sorted(packages - allowed)}"
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), package
