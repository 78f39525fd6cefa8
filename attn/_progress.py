"""The progress bar of every long loop: ``tqdm.auto``, imported without its ipywidgets warning.

In a notebook without ipywidgets, ``tqdm.auto`` warns once at import and falls back to the
text bar; the fallback is fine for the book, and the warning would otherwise sit in the
output of every chapter's first cell.
"""

from __future__ import annotations

import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    from tqdm.auto import tqdm
