"""The book: every notebook runs, the site builds without a warning, and its pages are complete.

Running the notebooks is the expensive part (up to a minute or two each on 2 CPU cores), so
it happens once. The book's sources are staged in a temporary folder; nbmake runs every
notebook there top to bottom with ``ATTN_BUDGET=quick`` and ``--overwrite``, which keeps the
outputs; then Jupyter Book builds the staged copy with execution off (``-W -n
--keep-going``, so any warning fails) and the pages are checked. The stage is outside
``_build`` because nbmake skips paths that contain ``_build``, and the repository's
notebooks are never touched (they are committed without outputs).
"""

from __future__ import annotations

import ast
import html
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

import attn
from attn.budget import BUDGETS
from attn.experiments import load_results
from attn.summary import describe, format_summary, quote, summarize_dir
from test_notebooks import colab_link

ROOT = Path(__file__).resolve().parent.parent
MATHJAX = ROOT / "_vendor" / "mathjax" / "tex-mml-chtml.js"
CELL_TIMEOUT = 600  # seconds per cell under nbmake: catches a hung cell; the slowest (chapter 3 loading and re-measuring 7 trained networks) takes a few minutes
PLOTTING = re.compile(r"\bplt\.|\bplot\.\w+\(|\.imshow\(|\.savefig\(")


def toc_files() -> list[str]:
    """Every page of ``_toc.yml`` (root, parts, chapters, sections), in reading order, without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        walk(part["chapters"])
    return files


def source_of(page: str) -> Path:
    """The ``.ipynb`` or ``.md`` file of a toc entry."""
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{page}{suffix}").exists():
            return ROOT / f"{page}{suffix}"
    raise FileNotFoundError(f"_toc.yml lists {page}, but neither {page}.ipynb nor {page}.md exists")


PAGES = toc_files()
NOTEBOOK_PAGES = [page for page in PAGES if page.startswith("notebooks/")]


def test_every_toc_entry_has_a_source() -> None:
    missing = [page for page in PAGES if not any((ROOT / f"{page}{s}").exists() for s in (".ipynb", ".md"))]
    assert not missing, f"_toc.yml lists pages without a .ipynb or .md file: {missing}"


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the book's sources whose ``_config.yml`` turns execution off."""
    if not MATHJAX.exists():
        pytest.fail(f"{MATHJAX.relative_to(ROOT)} is missing: run `make mathjax` (or `make test`, which does it)")
    stage = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy(ROOT / "_toc.yml", stage)
    shutil.copytree(ROOT / "book", stage / "book")
    (stage / "notebooks").mkdir()
    for page in NOTEBOOK_PAGES:
        shutil.copy(source_of(page), stage / "notebooks")
    for shared in ("_vendor", "results"):  # MathJax for the pages; committed results the notebooks read
        if (ROOT / shared).exists():
            (stage / shared).symlink_to(ROOT / shared, target_is_directory=True)
    return stage


@pytest.fixture(scope="module")
def nbmake_run(stage: Path) -> subprocess.CompletedProcess:
    """nbmake over the staged notebooks, outputs written back into the stage."""
    env = {**os.environ, "ATTN_BUDGET": "quick"}
    command = [sys.executable, "-m", "pytest", "--nbmake", "--overwrite", f"--nbmake-timeout={CELL_TIMEOUT}",
               "-p", "no:cacheprovider", "--durations=0", "-v", "notebooks"]
    return subprocess.run(command, cwd=stage, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def site(stage: Path, nbmake_run: subprocess.CompletedProcess) -> tuple[Path, subprocess.CompletedProcess]:
    """The built HTML folder and the build's process (after the notebooks ran, whatever their result)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", str(stage), "--path-output", str(stage / "out"),
               "--warningiserror", "--nitpick", "--keep-going"]
    build = subprocess.run(command, cwd=stage, capture_output=True, text=True)
    return stage / "out" / "_build" / "html", build


def test_every_notebook_runs_top_to_bottom(nbmake_run: subprocess.CompletedProcess, capsys: pytest.CaptureFixture) -> None:
    if not NOTEBOOK_PAGES:
        pytest.skip("the table of contents lists no notebooks")
    with capsys.disabled():  # how long each notebook took, in the test log
        timings = re.findall(r"^\s*([\d.]+s) call\s+notebooks/([^:\s]+\.ipynb)", nbmake_run.stdout, re.MULTILINE)
        print("\nnbmake (ATTN_BUDGET=quick): " + ", ".join(f"{name} {seconds}" for seconds, name in timings))
    assert nbmake_run.returncode == 0, f"nbmake failed:\n{nbmake_run.stdout[-20000:]}\n{nbmake_run.stderr[-5000:]}"
    for page in NOTEBOOK_PAGES:
        assert re.search(rf"{re.escape(Path(page).name)}\.ipynb::\S* PASSED", nbmake_run.stdout), (
            f"nbmake did not report {page}.ipynb as passed:\n{nbmake_run.stdout[-5000:]}"
        )


def test_book_builds_without_warnings(site) -> None:
    html_dir, build = site
    warnings = [line for line in (build.stdout + build.stderr).splitlines() if re.search(r"WARNING|ERROR", line)]
    assert build.returncode == 0 and not warnings, (
        "jupyter-book build -W -n --keep-going failed:\n" + "\n".join(warnings) + "\n" + build.stdout[-5000:] + build.stderr[-5000:]
    )
    assert (html_dir / "index.html").exists()


class _PageParser(HTMLParser):
    """Collects the first ``<h1>``'s text, ``<img src>``, ``<script src>`` and stylesheet links."""

    def __init__(self) -> None:
        super().__init__()
        self.h1: list[str] = []
        self.in_h1 = 0
        self.skip = 0
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.done_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "h1" and not self.done_h1:
            self.in_h1 += 1
        elif self.in_h1 and (tag == "a" and "headerlink" in (attributes.get("class") or "")
                             or tag == "span" and "section-number" in (attributes.get("class") or "")):
            self.skip += 1
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"])
        if tag == "link" and "stylesheet" in (attributes.get("rel") or "") and attributes.get("href"):
            self.stylesheets.append(attributes["href"])

    def handle_endtag(self, tag: str) -> None:
        if self.in_h1 and self.skip and tag in ("a", "span"):
            self.skip -= 1
        elif tag == "h1" and self.in_h1:
            self.in_h1 -= 1
            self.done_h1 = True

    def handle_data(self, data: str) -> None:
        if self.in_h1 and not self.skip:
            self.h1.append(data)


def parse_page(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text())
    return parser


def page_title(page: str) -> str:
    """The ``# title`` of a page's source, without Markdown inline markup."""
    source = source_of(page)
    text = nbformat.read(source, as_version=4).cells[0].source if source.suffix == ".ipynb" else source.read_text()
    title = next(line for line in text.splitlines() if line.startswith("# "))[2:]
    return re.sub(r"[`*]", "", title).strip()


@pytest.mark.parametrize("page", PAGES)
def test_page_exists_with_its_title(site, page: str) -> None:
    html_dir, _ = site
    path = html_dir / f"{page}.html"
    assert path.exists(), f"{page}.html was not built"
    heading = " ".join("".join(parse_page(path).h1).split())
    assert heading == page_title(page), f"{page}.html: <h1> is {heading!r}, the source's title is {page_title(page)!r}"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_shows_its_figures(stage: Path, site, page: str) -> None:
    """A notebook that plots must have produced PNG outputs, and its page must show them."""
    html_dir, _ = site
    executed = nbformat.read(stage / f"{page}.ipynb", as_version=4)
    code = "\n".join(cell.source for cell in executed.cells if cell.cell_type == "code")
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
    png_outputs = [output for output in outputs if "image/png" in output.get("data", {})]
    if not PLOTTING.search(code):
        pytest.skip(f"{page} draws no plots")
    assert png_outputs, f"{page}: the code plots, but the executed notebook has no PNG output"
    path = html_dir / f"{page}.html"
    images = [src for src in parse_page(path).images if "_images/" in src and src.endswith(".png")]
    assert len(images) >= len(png_outputs), f"{page}.html shows {len(images)} PNG images for {len(png_outputs)} PNG outputs"
    for src in images:
        assert (path.parent / src).resolve().exists(), f"{page}.html: image {src} is not in the site"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_has_the_colab_button(site, page: str) -> None:
    html_dir, _ = site
    url = colab_link(ROOT / f"{page}.ipynb")
    assert html.escape(url) in (html_dir / f"{page}.html").read_text(), f"{page}.html has no launch link to {url}"


def test_no_page_loads_anything_from_another_host(site) -> None:
    html_dir, _ = site
    external = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
    offenders = []
    for path in sorted(html_dir.rglob("*.html")):
        page = parse_page(path)
        for url in page.scripts + page.stylesheets:
            if external.match(url) or re.search(r"thebe|require(\.min)?\.js", url):
                offenders.append(f"{path.relative_to(html_dir)}: {url}")
    assert not offenders, "pages load scripts or styles from elsewhere (they must read offline):\n" + "\n".join(offenders)


def test_math_pages_use_the_local_mathjax(site) -> None:
    html_dir, _ = site
    for page in ("book/notation", "notebooks/01_baseline"):
        scripts = parse_page(html_dir / f"{page}.html").scripts
        local = [src for src in scripts if src.split("?")[0].endswith("_static/mathjax/tex-mml-chtml.js")]
        assert local, f"{page}.html does not load the site's own MathJax: {scripts}"
    assert (html_dir / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    assert (html_dir / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def public_names() -> list[str]:
    """``attn.<name>`` for ``attn.__all__``, and ``attn.<module>.<name>`` for names a module adds to them."""
    names = [f"attn.{name}" for name in attn.__all__]
    for module in pkgutil.walk_packages(attn.__path__, "attn."):
        if module.name.endswith("__main__"):
            continue
        public = getattr(importlib.import_module(module.name), "__all__", [])
        names += [f"{module.name}.{name}" for name in public if name not in attn.__all__]
    return names


def test_api_page_documents_every_public_name(site) -> None:
    html_dir, _ = site
    text = (html_dir / "book" / "api.html").read_text()
    for module in ("attn", "attn.models", "attn.data", "attn.train", "attn.experiments", "attn.profile",
                   "attn.plot", "attn.budget"):
        assert f'id="module-{module}"' in text, f"the API page does not document {module}"
    missing = [name for name in public_names() if f'id="{name}"' not in text]
    assert not missing, f"book/api.md does not document these public names (add their module to it): {missing}"


def test_bibliography_lists_every_reference(site) -> None:
    html_dir, _ = site
    titles = re.findall(r"^\s*title\s*=\s*\{(.+)\},?$", (ROOT / "book" / "references.bib").read_text(), re.MULTILINE)
    page = html.unescape(re.sub(r"<[^>]+>", "", (html_dir / "book" / "bibliography.html").read_text())).lower()
    missing = [title for title in titles if title.replace("{", "").replace("}", "").lower() not in page]
    assert titles and not missing, f"bibliography.html lacks {missing}"


def test_budget_table_matches_attn_budget() -> None:
    """The budgets described on the how-to page are the ones in attn.budget."""
    text = (ROOT / "book" / "how_to_read_and_run.md").read_text()
    for budget in BUDGETS.values():
        sizes = [f"{size:,}" if size is not None else "all" for size in (budget.train_size, budget.test_size)]
        row = f"| `{budget.name}` | ResNet-{budget.depth} | {budget.epochs} | {sizes[0]} | {sizes[1]} |"
        assert row in text, f"book/how_to_read_and_run.md: the budget table should have the row {row!r}"


def _outputs(cell: nbformat.NotebookNode, kind: str) -> list[str]:
    """A code cell's displayed Markdown (``kind="markdown"``) or printed text (``kind="stream"``)."""
    if kind == "stream":
        return [output["text"] for output in cell.outputs if output["output_type"] == "stream"]
    return [output["data"]["text/markdown"] for output in cell.outputs if "text/markdown" in output.get("data", {})]


def test_every_quoted_row_is_generated_from_the_committed_files(stage: Path, nbmake_run) -> None:
    """Each ``quote([...])`` cell shows exactly what :func:`attn.summary.quote` makes of ``results/``."""
    quoted = 0
    for page in NOTEBOOK_PAGES:
        for cell in nbformat.read(stage / f"{page}.ipynb", as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for match in re.finditer(r"\bquote\((\[[^\]]*\]|'[^']*'|\"[^\"]*\")", cell.source):
                expected = quote(ast.literal_eval(match.group(1)), ROOT / "results", markdown=True)
                assert expected in _outputs(cell, "markdown"), f"{page}: the quoted rows differ from results/"
                quoted += 1
    assert quoted >= 5, "every mechanism chapter (02-06) should quote its rows of the grids"


def test_comparison_tables_are_generated_from_the_committed_files(stage: Path, nbmake_run) -> None:
    """Chapter 7's tables and sentences are those attn.summary makes of the committed files, or say none exist."""
    cells = [cell for cell in nbformat.read(stage / "notebooks" / "07_comparison.ipynb", as_version=4).cells
             if cell.cell_type == "code"]
    shown = [text for cell in cells for text in _outputs(cell, "markdown")]
    printed = "".join(text for cell in cells for text in _outputs(cell, "stream"))
    for grid in ("reference", "ablation", "main"):
        if not load_results(ROOT / "results" / grid):
            assert f"python -m attn grid {grid}" in printed, f"chapter 7 should say the {grid} grid is missing"
            continue
        rows = summarize_dir(ROOT / "results" / grid)
        assert format_summary(rows, markdown=True) in shown, f"chapter 7's {grid} table differs from results/{grid}"
        for row in rows:
            assert describe(row) in printed, f"chapter 7 lacks the sentence for {grid}/{row['variant']}"


def test_generated_tables_and_quotes_render_as_html(site) -> None:
    """Displayed Markdown is parsed (MyST), so the tables are <table>s and the quotes list items, not raw text."""
    html_dir, _ = site
    comparison = (html_dir / "notebooks" / "07_comparison.html").read_text()
    assert "| attention |" not in comparison, "chapter 7 shows a summary table as raw Markdown"
    for grid in ("reference", "ablation", "main"):
        for row in summarize_dir(ROOT / "results" / grid) if load_results(ROOT / "results" / grid) else []:
            cell = rf"<td[^>]*>\s*(?:<p>)?{re.escape(row['variant'])}\s*(?:</p>)?\s*</td>"
            assert re.search(cell, comparison), f"chapter 7's {grid} table has no cell for {row['variant']}"
    se_page = (html_dir / "notebooks" / "02_se.html").read_text()
    assert re.search(r"<li>\s*(?:<p>)?ablation grid: ResNet-8 \+ none", se_page), "chapter 2's quoted rows are not a list"


# Every mechanism chapter analyses its module as trained in the reference grid (from committed weights).
TRAINED_SECTIONS = {"notebooks/02_se": "se", "notebooks/03_se_variants": "se", "notebooks/04_eca": "eca",
                    "notebooks/05_gather_excite": "ge_theta_plus", "notebooks/06_nam": "nam"}


@pytest.mark.parametrize("page", sorted(TRAINED_SECTIONS))
def test_each_mechanism_chapter_shows_its_trained_module_from_committed_weights(stage: Path, nbmake_run, page: str) -> None:
    cells = nbformat.read(stage / f"{page}.ipynb", as_version=4).cells
    start = next((i for i, cell in enumerate(cells) if cell.cell_type == "markdown"
                  and re.match(r"## What the trained", cell.source)), None)
    assert start is not None, f"{page} has no '## What the trained ...' section"
    end = next((i for i in range(start + 1, len(cells)) if cells[i].cell_type == "markdown"
                and re.match(r"## ", cells[i].source)), len(cells))
    section = [cell for cell in cells[start:end] if cell.cell_type == "code"]
    assert "load_trained_network(" in "\n".join(cell.source for cell in section), f"{page} loads no trained network"
    printed = "".join(text for cell in section for text in _outputs(cell, "stream"))
    assert f"resnet20-{TRAINED_SECTIONS[page]}-e30-s0-" in printed, f"{page} did not load the committed network"
    figures = [output for cell in section for output in cell.outputs if "image/png" in output.get("data", {})]
    assert figures, f"{page}: its trained-module section draws no figure"


ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:home|root|tmp|work|usr|opt|var|private|Users|mnt|srv)/[\w.-]")


def test_no_built_page_shows_a_path_of_the_machine_it_was_built_on(site, stage: Path) -> None:
    html_dir, _ = site
    offenders = []
    for path in sorted(html_dir.rglob("*.html")):
        text = html.unescape(re.sub(r"<[^>]+>", " ", path.read_text()))
        for needle in (str(ROOT), str(stage), sys.prefix):
            if needle in text:
                offenders.append(f"{path.relative_to(html_dir)}: {needle}")
        offenders += [f"{path.relative_to(html_dir)}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
                      for m in ABSOLUTE_PATH.finditer(text)]
    assert not offenders, "built pages print absolute paths (show repository-relative ones):\n" + "\n".join(offenders[:20])
