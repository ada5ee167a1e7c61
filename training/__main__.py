"""``python -m training`` is ``riffd train``."""
import sys

from training.cli import main

sys.exit(main())
