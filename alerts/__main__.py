"""``python -m alerts``: run the alert service until SIGTERM or SIGINT."""

import sys

from alerts.service import main

sys.exit(main())
