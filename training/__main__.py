"""``python -m riffd.training`` is ``riffd train``."""
import sys

from riffd.training.cli import main

sys.exit(main())
