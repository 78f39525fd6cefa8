"""Sphinx extension: pages load nothing from other hosts, so the built book reads offline.

Jupyter Book 1 always loads sphinx-thebe, even with ``launch_buttons.thebe: false``: every
page then gets its loader script, an inline configuration naming a CDN copy of thebe, and a
Binder configuration block. The book has no live-code button, so sphinx-thebe's event
handlers are disconnected and its stylesheet is dropped from the pages. (MathJax is
self-hosted through ``mathjax_path``; see ``_config.yml``.)
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def disconnect_thebe(app: Sphinx) -> None:
    """Remove every event handler that sphinx-thebe registered (scripts, configuration blocks)."""
    for listeners in app.events.listeners.values():
        for listener in list(listeners):
            if getattr(listener.handler, "__module__", "").startswith("sphinx_thebe"):
                app.disconnect(listener.id)


def drop_thebe_assets(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Leave out sphinx-thebe's stylesheet (and any script of it that is left)."""
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if "thebe" not in str(getattr(asset, "filename", ""))]


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("builder-inited", disconnect_thebe)
    app.connect("html-page-context", drop_thebe_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
