"""``python -m launcher`` (what ``make run`` runs): start everything in the foreground."""

import sys

from launcher.run import main

sys.exit(main())
