"""requirements.txt: it resolves in a fresh virtual environment, keeps the torch there, and notebook 01's imports work.

A reader's path: a new virtual environment that already has torch and torchvision (at this
interpreter's versions, standing in for Colab's or a CUDA build), a copy of the checkout, and
``pip install -r requirements.txt`` from its root. Then ``pip check`` must find every
requirement met, torch must be the one that was there, ``attn`` must be the checkout's
(editable), and the imports of notebook 01 must run.

Like the Colab-path test it takes a minute or two, mostly installing torch (from pip's cache
or local wheels), and ``ATTN_SKIP_COLAB_TEST=1`` skips it locally.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_baseline.ipynb"
PREINSTALLED = ("torch", "torchvision")
TORCH_STATE = "import torch, os; print(torch.__version__, os.stat(torch.__file__).st_mtime_ns, torch.__file__)"

pytestmark = pytest.mark.skipif(os.environ.get("ATTN_SKIP_COLAB_TEST") == "1", reason="ATTN_SKIP_COLAB_TEST=1")


def run(command: list[str], venv: Path, cwd: Path) -> str:
    """Run ``command`` with ``venv`` active and nothing pointing into the project's own .venv; its stdout."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed in the test environment:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def checkout_copy(destination: Path) -> Path:
    """The files ``pip install -r requirements.txt`` reads in a checkout, and the package."""
    destination.mkdir()
    for name in ("requirements.txt", "pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, destination)
    shutil.copytree(ROOT / "attn", destination / "attn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def notebook_01_imports() -> str:
    """The code cell of notebook 01 that imports what the chapter uses (the one after the install cell)."""
    cells = [cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"]
    imports = [source for source in cells if "from attn" in source and "pip" not in source]
    assert imports, "notebook 01 has no cell importing from attn"
    return imports[0]


def test_requirements_txt_has_no_exact_torch_pin():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    for line in filter(None, lines):
        assert not line.startswith(("torch==", "torchvision==")), line


def test_requirements_install_in_a_fresh_environment_and_notebook_01_imports_work(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    source = checkout_copy(tmp_path / "checkout")
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in PREINSTALLED]
    run([python, "-m", "pip", "install", "--quiet", *pins], venv, tmp_path)
    torch_before = run([python, "-c", TORCH_STATE], venv, tmp_path)

    run([python, "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], venv, source)
    run([python, "-m", "pip", "check"], venv, tmp_path)

    assert run([python, "-c", TORCH_STATE], venv, tmp_path) == torch_before, "requirements.txt replaced torch"
    attn_file = run([python, "-c", "import attn; print(attn.__file__)"], venv, tmp_path)
    assert Path(attn_file).is_relative_to(source), f"attn was imported from {attn_file}, not from the checkout"
    run([python, "-c", notebook_01_imports()], venv, tmp_path)
