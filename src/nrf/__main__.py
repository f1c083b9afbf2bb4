"""``python -m nrf`` runs the command line."""

import sys

from nrf.cli.main import main

sys.exit(main())
