"""``python -m riffd.daemon`` is the ``riffd`` command."""
import sys

from riffd.daemon.cli import main

sys.exit(main())
