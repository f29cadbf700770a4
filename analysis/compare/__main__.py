"""``python -m analysis.compare``: see :mod:`analysis.compare`; the command line itself is :func:`analysis.cli.compare`."""

import sys

from analysis.cli import compare as main

if __name__ == "__main__":
    sys.exit(main())
