"""``python -m client_app.gui``: the same as ``soulsai-client-gui``."""

import sys

from client_app.gui import main

sys.exit(main())
