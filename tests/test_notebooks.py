"""The committed notebooks follow the book's conventions (no outputs, the install cell, the header).

The repository's URL and branch live in one place, ``_config.yml``; every notebook's Colab
link and install cell must agree with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())

# The second cell of every notebook, with {source} = "git+<repository.url>@<branch>".
INSTALL_CELL = """\
# Colab: install the attn package when it is missing; the installed torch is never replaced.
import importlib.metadata, importlib.util, os, subprocess, sys, tempfile
if importlib.util.find_spec("attn") is None:
    source = os.environ.get("ATTN_INSTALL_FROM", "{source}")
    pins = [f"{{name}}=={{importlib.metadata.version(name)}}" for name in ("torch", "torchvision")
            if importlib.util.find_spec(name) is not None]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\\n".join(pins))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-c", constraints.name, source], check=True)"""

NOTEBOOK_METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def install_source() -> str:
    """``git+https://github.com/<org>/<repo>@<branch>`` from ``_config.yml``."""
    repository = CONFIG["repository"]
    return f"git+{repository['url']}@{repository['branch']}"


def colab_link(notebook: Path) -> str:
    """The URL of the Colab launch button for ``notebook`` (the theme builds the same one)."""
    repository = CONFIG["repository"]
    github = repository["url"].removeprefix("https://github.com/")
    book = repository["path_to_book"].strip("/")
    path = notebook.relative_to(ROOT / book if book else ROOT).as_posix()
    colab = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{github}/blob/{repository['branch']}/{book + '/' if book else ''}{path}"


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks in notebooks/"


def test_repository_is_on_github() -> None:
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", CONFIG["repository"]["url"]), (
        "_config.yml repository.url must be https://github.com/<org>/<repo>: Colab opens notebooks from GitHub only"
    )


@pytest.fixture(params=NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def notebook(request: pytest.FixtureRequest) -> tuple[Path, nbformat.NotebookNode]:
    path = request.param
    return path, nbformat.read(path, as_version=nbformat.NO_CONVERT)


def test_is_valid_nbformat_4(notebook) -> None:
    path, nb = notebook
    assert nb.nbformat == 4
    nbformat.validate(nb)


def test_metadata_is_only_the_kernel(notebook) -> None:
    path, nb = notebook
    assert dict(nb.metadata) == NOTEBOOK_METADATA, f"{path.name}: notebook metadata must be exactly {NOTEBOOK_METADATA}"


def test_committed_without_outputs(notebook) -> None:
    path, nb = notebook
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}, cell {number}: has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name}, cell {number}: execution_count must be null"


def test_first_cell_has_title_colab_link_and_runtime(notebook) -> None:
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: cell 1 must be markdown"
    lines = first.source.splitlines()
    assert re.fullmatch(r"# \S.*", lines[0]), f"{path.name}: cell 1 must start with '# <title>'"
    link = f"[Open in Colab]({colab_link(path)})"
    assert link in first.source, f"{path.name}: cell 1 must contain the line {link}"
    after_link = first.source.split(link, 1)[1]
    assert re.search(r"quick", after_link) and re.search(r"\d+\s*s\b", after_link), (
        f"{path.name}: cell 1 must state the measured runtime in seconds with ATTN_BUDGET=quick"
    )
    assert re.search(r"full", after_link) and re.search(r"estimate", after_link, re.IGNORECASE), (
        f"{path.name}: cell 1 must give the Colab GPU runtime with `full`, labelled as an estimate"
    )


def test_second_cell_is_the_install_cell(notebook) -> None:
    path, nb = notebook
    cell = nb.cells[1]
    assert cell.cell_type == "code"
    assert cell.source == INSTALL_CELL.format(source=install_source()), (
        f"{path.name}: cell 2 must be exactly the install cell (see tests/test_notebooks.py)"
    )
    assert cell.metadata.get("tags") == ["remove-cell"], f"{path.name}: cell 2 must be tagged remove-cell"


def test_every_notebook_is_in_the_table_of_contents() -> None:
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*(\S+)", toc))
    missing = [path.name for path in NOTEBOOKS if path.relative_to(ROOT).with_suffix("").as_posix() not in listed]
    assert not missing, f"notebooks not in _toc.yml (the book would not show them): {missing}"
