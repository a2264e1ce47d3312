"""Makes this interpreter a client-only install (``pip install veilface``, no extras) of the packages named in
VEILFACE_TEST_NOT_INSTALLED (comma-separated, top-level import names): put this folder on PYTHONPATH.

Each name is set to None in ``sys.modules``, Python's own way to refuse a module: ``import fastapi`` (or any
``fastapi.x``) raises ModuleNotFoundError and ``importlib.util.find_spec("fastapi")`` answers None, as on a
machine where the package is absent. A finder that raised ModuleNotFoundError would make ``find_spec`` raise
too, which an absent package never does.
"""

import os
import sys

for _name in filter(None, os.environ.get("VEILFACE_TEST_NOT_INSTALLED", "").split(",")):
    sys.modules[_name] = None  # type: ignore[assignment]
