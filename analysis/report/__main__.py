"""``python -m analysis.report``: see :mod:`analysis.report`; the command line itself is :func:`analysis.cli.report`."""

import sys

from analysis.cli import report as main

if __name__ == "__main__":
    sys.exit(main())
