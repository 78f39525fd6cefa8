"""Sphinx extension for the API page: ``automodule :members:`` also documents the constants in ``__all__``.

autodoc documents module-level data only when it has a ``#:`` doc comment, so a public
constant such as ``attn.data.MEAN`` would be missing from the page, and every docstring that
refers to it (``:data:`MEAN```) would fail the ``-n`` build. Any name in a module's
``__all__`` that is not a function, class or module is documented as data, with its value.
"""

from __future__ import annotations

import inspect
from typing import Any

from sphinx.application import Sphinx
from sphinx.ext.autodoc import DataDocumenter, Documenter, ModuleDocumenter


class PublicDataDocumenter(DataDocumenter):
    """:class:`DataDocumenter` that also accepts undocumented constants named in ``__all__``."""

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool, parent: Documenter) -> bool:
        if super().can_document_member(member, membername, isattr, parent):
            return True
        public = getattr(parent.object, "__all__", None) or ()
        return (isinstance(parent, ModuleDocumenter) and membername in public
                and not (inspect.isroutine(member) or inspect.isclass(member) or inspect.ismodule(member)))

    def get_doc(self) -> list[list[str]] | None:
        """The ``#:`` comment, or nothing: not the docstring of the value's type (``dict``, ``tuple``)."""
        if not self.get_module_comment(self.objpath[-1]) and inspect.getdoc(self.object) == inspect.getdoc(type(self.object)):
            return []
        return super().get_doc()


def setup(app: Sphinx) -> dict[str, bool]:
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(PublicDataDocumenter, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
