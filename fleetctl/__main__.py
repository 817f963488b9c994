"""``python -m fleetctl``: the same as the ``fleetctl`` command."""

import sys

from fleetctl.main import main

sys.exit(main())
