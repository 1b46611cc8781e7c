"""The corpus readers: every module of this package is imported, and each registers its corpus
kind (`lightning_modules.data.corpora.register_corpus`).

`CORPUS_KINDS` maps the `kind` of a config's corpus section to its section class.
"""

import importlib
import pkgutil

from lightning_modules.data.corpora import (
    CORPUS_KINDS,
    CorpusSection,
    corpus_from_path,
    corpus_section,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CORPUS_KINDS", "CorpusSection", "corpus_from_path", "corpus_section"]
