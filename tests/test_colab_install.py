"""The Colab path: a notebook's install cell in an environment that has attn's dependencies but not attn.

Colab comes with torch, torchvision and Jupyter, without attn. This test builds such an
environment: a new virtual environment with the runtime dependencies of ``pyproject.toml``
(torch and torchvision at the versions this interpreter has, standing in for Colab's) and
ipykernel. It runs notebook 01's install cell there with ``ATTN_INSTALL_FROM`` pointing at a
copy of this checkout (the cell's default is the GitHub repository), checks that torch was
not replaced, and executes notebook 01 with that environment's kernel.

It takes a minute or two, mostly installing torch (from pip's cache or local wheels). Set
``ATTN_SKIP_COLAB_TEST=1`` to skip it locally; CI runs it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_baseline.ipynb"
KERNEL_NAME = "attn-colab-test"
CELL_TIMEOUT = 600
PREINSTALLED = ("torch", "torchvision")  # what Colab already has, at this interpreter's versions

pytestmark = pytest.mark.skipif(os.environ.get("ATTN_SKIP_COLAB_TEST") == "1", reason="ATTN_SKIP_COLAB_TEST=1")


def runtime_requirements() -> list[str]:
    """``[project] dependencies``, with torch and torchvision pinned to the versions installed here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {name: f"{name}=={importlib.metadata.version(name)}" for name in PREINSTALLED}
    requirements = []
    for requirement in project["dependencies"]:
        name = requirement.split(";")[0].split("[")[0]
        for operator in "<>=!~ ":
            name = name.split(operator)[0]
        requirements.append(pinned.pop(name, requirement))
    return requirements + list(pinned.values())


def clean_environment(venv: Path, **extra: str) -> dict[str, str]:
    """This process's environment without anything pointing into the project's own .venv."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return {**env, **extra}


def run(command: list[str], env: dict[str, str]) -> str:
    """Run ``command`` outside the checkout (so ``import attn`` cannot find its source); its stdout."""
    done = subprocess.run(command, env=env, cwd=env["VIRTUAL_ENV"], capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed in the test environment:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def python(venv: Path, code: str, env: dict[str, str]) -> str:
    """Run ``code`` with the venv's interpreter; its stdout."""
    return run([str(venv / "bin" / "python"), "-c", code], env)


def checkout_copy(destination: Path) -> Path:
    """What a ``git+https://...`` install would fetch: the package and its build metadata, nothing built."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, destination)
    shutil.copytree(ROOT / "attn", destination / "attn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


TORCH_STATE = "import torch, os; print(torch.__version__, os.stat(torch.__file__).st_mtime_ns, torch.__file__)"


def test_install_cell_then_notebook_01_in_a_colab_like_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = clean_environment(venv)
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *runtime_requirements(), "ipykernel"]
    run(install, env)
    torch_before = python(venv, TORCH_STATE, env)
    assert python(venv, "import importlib.util; print(importlib.util.find_spec('attn'))", env) == "None"

    # The install cell, exactly as committed, with the source pointed at this checkout.
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    install_cell = notebook.cells[1].source
    assert "ATTN_INSTALL_FROM" in install_cell
    env = clean_environment(venv, ATTN_INSTALL_FROM=str(checkout_copy(tmp_path / "source")))
    python(venv, install_cell, env)

    assert python(venv, TORCH_STATE, env) == torch_before, "the install cell replaced torch"
    attn_file = python(venv, "import attn; print(attn.__file__)", env)
    assert Path(attn_file).is_relative_to(venv), f"attn was imported from {attn_file}, not from the new environment"

    # Notebook 01, top to bottom, in that environment, plus a last cell saying where it ran.
    kernels = tmp_path / "jupyter"
    run([str(venv / "bin" / "python"), "-m", "ipykernel", "install", "--prefix", str(kernels), "--name", KERNEL_NAME], env)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json, sys, attn, torch\nprint(json.dumps([sys.prefix, attn.__file__, torch.__version__]))"
    ))
    specs = KernelSpecManager(kernel_dirs=[str(kernels / "share" / "jupyter" / "kernels")])
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT, kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute(env={**env, "ATTN_BUDGET": "quick"})

    prefix, kernel_attn, kernel_torch = json.loads(notebook.cells[-1].outputs[0]["text"])
    assert Path(prefix) == venv and Path(kernel_attn).is_relative_to(venv)
    assert kernel_torch == torch_before.split()[0]
