"""``python -m daemon`` is the ``riffd`` command."""
import sys

from daemon.cli import main

sys.exit(main())
