"""``python -m analysis.arrhenius``: the Arrhenius fit of a study directory or a diffusivity table (see
:mod:`analysis.arrhenius`); the command line itself is :func:`analysis.cli.arrhenius`."""

import sys

from analysis.cli import arrhenius as main

if __name__ == "__main__":
    sys.exit(main())
