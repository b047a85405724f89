#!/usr/bin/env python
"""Hostile clients and browsers against the real platform: see ``--help`` (generated from the case
registry) and bench/README.md. The bench itself is the package ``bench/hostile/``: ``registry``
(cases and categories), ``world`` (the platform and what a case reads back), ``wire`` (what hostile
clients send), ``runner`` (one case at a time, its cost measured), ``cases/`` (one module per
category), ``main`` (options and the JSON)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository: harness, portal, client_app
sys.path.insert(0, str(HERE))  # bench/: the hostile package

from hostile.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
