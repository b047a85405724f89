"""``python -m client_app``: the same as the ``soulsai-client`` command."""

import sys

from client_app.cli import main

sys.exit(main())
