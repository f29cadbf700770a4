"""The ``lammps`` family: your own classical potential, as the arguments of LAMMPS's own commands, with elements by
name instead of LAMMPS type numbers.

A catalog entry (units metal: eV, Å, e)::

    [licl-buck]
    family = "lammps"
    elements = ["Li", "Cl"]                      # required: the elements the lines are for
    pair_style = "buck/coul/long 8.0"            # the arguments of pair_style
    pair_coeff = ["Li Li 0 1 0", "Li Cl 1000 0.3 0", "Cl Cl 2000 0.35 50"]   # "El1 El2 args..." or "* * args"
    kspace_style = "ewald 1e-6"                  # optional: the arguments of kspace_style
    charges = { Li = 1.0, Cl = -1.0 }            # optional: the data file becomes atom_style charge
    masses = { Li = 6.94 }                       # optional: LAMMPS masses (default: ASE's standard masses)
    pair_modify = "table 0"                      # optional: the arguments of pair_modify (kspace_modify alike)
    cutoff_angstrom = 8.0                        # optional: see below

Mapping to the study: LAMMPS type ``i`` is the structure's ``type_order[i - 1]``; each ``"El1 El2 args"`` line
becomes ``pair_coeff i j args`` with ``i <= j`` (LAMMPS sets nothing for ``i > j``). A line naming an element of
the entry that the structure lacks is left out (an entry may cover more elements than a study's crystal has); an
element that is not among the entry's ``elements`` is an error naming the entry. ``"* * args"`` lines apply to
every pair and go in as they are; their arguments may not name the entry's elements (styles that map elements to
types after a file, eam/alloy or tersoff, are not taken by this family: their element list would depend on the
study's type order). A pair given twice is refused unless the style is a ``hybrid`` one (where a pair may have a
line per sub-style).

``cutoff_angstrom`` is the longest interaction range (the cell must be twice as wide). Without it, it is the largest
number among pair_style's arguments: the global cutoff(s) of buck, born, lj/cut and their ``coul/long`` variants,
of ``coul/wolf`` and ``coul/dsf`` (after the damping parameter) and of ``hybrid`` sub-styles. Give it where that is
not so (``table`` styles, whose numbers are table sizes, or per-pair cutoffs in pair_coeff longer than the global
one); a pair_style with no number needs it.

Safety: each value is the arguments of one command, never a command. Control characters (a newline would start a
new command), ``#`` (a comment), ``$`` (variable substitution), ``&`` (a continued line) and quotes (a quoted
argument may span lines) are refused, and so are pair styles that run Python code (``python``, ``mliap``: use the
mace family for ML-IAP models). LAMMPS itself judges the rest: ``driver run`` runs ``run 0`` with the lines on the
study's structure before any run starts (:func:`driver.session.check_runs`).

Charges need not sum to zero over the cell (a charged defect cell: LAMMPS's Ewald sum adds a neutralising
background); the study's ``charge_compensation`` applies as for the ``classical`` family.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import PotentialError
from core.names import control_characters
from core.rundir import Requirements
from potentials.base import BuildNeeds, Compute, PairBlock

if TYPE_CHECKING:
    from potentials.catalog import PotentialEntry

NEEDS_GPU = False
CHEAP_ON_CPU = True
HIDE_GPUS_ON_CPU = False
FOUNDATION_MODELS = False
ELEMENTS_FROM_MODEL = False
BUILD_NEEDS = BuildNeeds()  # the entry's own styles: each pair block's requirements name them
#: the catalog keys of a lammps entry and their types (checked when the entry is used: potentials.catalog)
PARAMS: dict[str, object] = {"pair_style": str, "pair_coeff": tuple[str, ...], "kspace_style": str,
                             "pair_modify": str, "kspace_modify": str, "charges": dict[str, float],
                             "masses": dict[str, float], "cutoff_angstrom": float}
#: characters a value may not hold: a comment, a variable substitution, a continued line, a quoted argument
FORBIDDEN = "#$&\"'"
#: pair styles that run Python code (or load pickled models): not LAMMPS lines a catalog entry may smuggle in
CODE_STYLES = ("python", "mliap")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Lines:
    """A lammps entry, strictly typed: each text the arguments of one LAMMPS command."""

    pair_style: str
    pair_coeff: tuple[str, ...]
    cutoff_angstrom: float
    kspace_style: str | None = None
    pair_modify: str | None = None
    kspace_modify: str | None = None
    charges: dict[str, float] | None = None
    masses: dict[str, float] | None = None

    @property
    def style(self) -> str:
        return self.pair_style.split()[0]


def model_file(entry: "PotentialEntry") -> Path | None:
    return None  # the lines live in the catalog


def ase_calculator(entry: "PotentialEntry", device: str = "cpu") -> Any:
    raise PotentialError(f"potential {entry.name!r} is a catalog of LAMMPS lines: it has no ASE calculator here "
                         "(validation and parity checks take mace or deepmd models)")


def lines_of(entry: "PotentialEntry") -> Lines:
    """The entry's values, typed and checked (an error names the catalog file, the entry and the key)."""
    where = f"{entry.catalog}: [{entry.name}]"
    values = entry.typed(PARAMS)
    for key in ("pair_style", "pair_coeff"):
        if key not in values:
            raise PotentialError(f"{where} needs {key!r} (a lammps entry gives at least pair_style and pair_coeff)")
    texts = [(k, values[k]) for k in ("pair_style", "kspace_style", "pair_modify", "kspace_modify") if k in values]
    texts += [(f"pair_coeff[{i}]", line) for i, line in enumerate(values["pair_coeff"])]
    for key, text in texts:
        _check_args(text, f"{where} {key}")
    words = values["pair_style"].split()
    code = [w for w in words if w.split("/")[0] in CODE_STYLES]
    if code:
        raise PotentialError(f"{where} pair_style {values['pair_style']!r}: {code[0]} runs Python code; a lammps "
                             "entry takes LAMMPS's own pair styles (ML-IAP models: the mace family)")
    if not values["pair_coeff"]:
        raise PotentialError(f"{where} pair_coeff is empty: give a line per pair of elements, e.g. \"Li F 1 0.3 0\"")
    for key in ("charges", "masses"):
        unknown = sorted(set(values.get(key) or {}) - set(entry.elements))
        if unknown:
            raise PotentialError(f"{where} {key} names {unknown}, not among its elements {list(entry.elements)}")
    for element, mass in (values.get("masses") or {}).items():
        if mass <= 0:
            raise PotentialError(f"{where} masses.{element}: must be positive (g/mol), got {mass}")
    if "cutoff_angstrom" not in values:
        numbers = [float(w) for w in words[1:] if _NUMBER.match(w)]
        if not numbers:
            raise PotentialError(f"{where} needs cutoff_angstrom: pair_style {values['pair_style']!r} has no number "
                                 "to take the cutoff from")
        values["cutoff_angstrom"] = max(numbers)
    if values["cutoff_angstrom"] <= 0:
        raise PotentialError(f"{where} cutoff_angstrom: must be a positive length in Å, "
                             f"got {values['cutoff_angstrom']}")
    return Lines(**values)


def _check_args(text: str, where: str) -> None:
    bad = control_characters(text) + sorted({c for c in text if c in FORBIDDEN})
    if bad:
        raise PotentialError(f"{where} {text!r} holds {', '.join(dict.fromkeys(bad))}: each value is the arguments "
                             f"of one LAMMPS command, without control characters or {' '.join(FORBIDDEN)}")
    if not text.split():
        raise PotentialError(f"{where} is empty")


def pair_block(entry: "PotentialEntry", type_order: tuple[str, ...], compute: Compute = Compute()) -> PairBlock:
    """The entry's lines with LAMMPS type numbers for ``type_order``; runs on the CPU whatever the accelerator."""
    spec = lines_of(entry)
    where = f"{entry.catalog}: [{entry.name}]"
    types = {element: i for i, element in enumerate(type_order, start=1)}
    lines = [f"pair_style {spec.pair_style}"]
    seen: dict[tuple[int, int], int] = {}
    for k, line in enumerate(spec.pair_coeff):
        words = line.split()
        if len(words) < 2:
            raise PotentialError(f"{where} pair_coeff[{k}] {line!r}: expected \"El1 El2 args...\" or \"* * args...\"")
        a, b, args = words[0], words[1], words[2:]
        if (a, b) == ("*", "*"):
            named = sorted(set(args) & set(entry.elements))
            if named:
                raise PotentialError(f"{where} pair_coeff[{k}] {line!r} names {named} after * *: elements mapped to "
                                     "types in pair_coeff * * (eam/alloy, tersoff ...) are not taken by this family")
            lines.append(f"pair_coeff * * {' '.join(args)}")
            continue
        stray = [e for e in (a, b) if e not in entry.elements]
        if stray:
            raise PotentialError(f"{where} pair_coeff[{k}] {line!r}: {stray[0]!r} is not one of its elements "
                                 f"{list(entry.elements)} (give two element names, or * *)")
        if a not in types or b not in types:
            continue  # an element of the entry that this structure does not have
        i, j = sorted((types[a], types[b]))
        if (i, j) in seen and not spec.style.startswith("hybrid"):
            raise PotentialError(f"{where} pair_coeff[{k}] {line!r} sets {a}-{b} again (pair_coeff[{seen[i, j]}])")
        seen[i, j] = k
        lines.append(f"pair_coeff {i} {j} {' '.join(args)}  # {type_order[i - 1]}-{type_order[j - 1]}")
    lines += [f"pair_modify {spec.pair_modify}"] if spec.pair_modify else []
    lines += [f"kspace_style {spec.kspace_style}"] if spec.kspace_style else []
    lines += [f"kspace_modify {spec.kspace_modify}"] if spec.kspace_modify else []
    lines += [f"mass {types[e]} {m}  # {e}" for e, m in (spec.masses or {}).items() if e in types]
    if spec.charges is not None:
        missing = [e for e in type_order if e not in spec.charges]
        if missing:
            raise PotentialError(f"{where} charges has no charge for {missing}, which the structure has")
    styles = (("pair", spec.style),) + ((("kspace", spec.kspace_style.split()[0]),) if spec.kspace_style else ())
    return PairBlock(
        lines=tuple(lines),
        elements=tuple(type_order),
        cutoff_angstrom=spec.cutoff_angstrom,
        charges=None if spec.charges is None else {e: spec.charges[e] for e in type_order},
        requirements=Requirements(styles=styles),
    )
