"""``python -m riffd.daemon.view``: the same as ``riffd view``."""
import argparse
import sys

from riffd.daemon.view import add_arguments, run

parser = argparse.ArgumentParser(prog="riffd view")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
