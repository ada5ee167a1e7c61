"""``python -m riffd.daemon`` is the ``riffd`` command."""
import sys

try:
    from riffd.daemon.cli import main
except KeyboardInterrupt:          # Ctrl-C while Python is still importing: no traceback
    print("riffd: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
