"""``python -m driver plan``: how long to run each temperature, and what it costs, to reach a σ(Ea) target.

    python -m driver plan --study paper [--root runs] [--potential mace-mpa-0] [--target-ea-stderr 0.01]
                          [--max-production-ps 20000] [--replicas 4] [--temperature 550 ...] [--drop]
                          [--prior-ea 0.3 --prior-rate-per-ps 1e3] [--ns-per-day 3.1] [--out plan.json]

From what the study's runs tell (each temperature's migration events, simulated time and σ(D) as the analysis
gave it; :func:`analysis.plan.knowledge_of`) — or, for temperatures without events, from the Arrhenius law of the
others' rates or a prior the user gives — the planner (:mod:`analysis.plan`) predicts σ(D)/D and σ(Ea) for any
lengths and replicas, and proposes the least simulated time that reaches the target, each run between what it
has run and the cap. The model's σ is checked against the σ the runs actually gave (printed state by state).

Cost. The throughput of each temperature's runs is measured from their LAMMPS logs (``Loop time of T on P procs
for N steps``: simulated ns per day of wall time, all stages) or given (``--ns-per-day``, e.g. a GPU's where the
study ran on CPUs); the time still to simulate, replicas summed, over it is the device-hours (one run per device;
runs packed several per GPU share it), and the longest run still to go over it the wall time. A table on the
terminal, and the whole plan as strict JSON (written atomically; default ``<study dir>/plan.json``).

Defaults: the target and the cap are the study's ``[precision]`` ones where it has them, else
:data:`DEFAULT_TARGET_EV` and :data:`DEFAULT_CAP_FACTOR` times ``md.production_ps``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict
from pathlib import Path

from core.errors import InputError
from core.files import atomic_write_text, json_dumps

#: σ(Ea) target (eV) where neither the command line nor the study's [precision] names one
DEFAULT_TARGET_EV = 0.01
#: the cap on production per replica, in units of the study's md.production_ps, where nothing names one
DEFAULT_CAP_FACTOR = 50.0
PLAN_FILE = "plan.json"
_LOOP = re.compile(r"^Loop time of\s+(\S+)\s+on\s+\d+\s+procs\s+for\s+(\d+)\s+steps", re.M)


def throughput_ns_per_day(run_dirs) -> float | None:
    """Simulated ns per day of wall time of runs, from the ``Loop time`` lines of all their LAMMPS logs (every
    attempt and stage; None where no log has one)."""
    from core.rundir import RunDir

    ns = seconds = 0.0
    for d in run_dirs:
        run = RunDir(d)
        timestep_fs = run.read().timestep_fs
        for path in run.logs():
            for wall, steps in _LOOP.findall(path.read_text(encoding="utf-8", errors="replace")):
                ns += int(steps) * timestep_fs * 1e-6
                seconds += float(wall)
    return ns / seconds * 86400.0 if seconds > 0 and ns > 0 else None


def device_hours(simulated_ps: float, ns_per_day: float | None) -> float | None:
    """Hours to simulate ``simulated_ps`` at ``ns_per_day`` (None: unknown throughput)."""
    if ns_per_day is None or not ns_per_day > 0:
        return None
    return simulated_ps / 1000.0 / ns_per_day * 24.0


def plan_series(analysis, series: str, target: float, cap: float, replicas: int | None, temperatures,
                prior, ns_per_day: float | None, states=None, drop: bool = False) -> dict:
    """The plan of one Arrhenius series: what is known (from the study's analysis, or ``states`` given), the
    model's check, the prediction now and the proposal, with throughputs and device-hours; a JSON-able record."""
    from analysis.plan import knowledge_of, noise_check, predict, propose

    states = states if states is not None else knowledge_of(analysis, series, prior)
    proposal = propose(states, target, cap, replicas, temperatures, drop)
    measured = {s.temperature_k: throughput_ns_per_day(s.run_dirs) if s.run_dirs else None for s in states}
    known = [v for v in measured.values() if v]
    usual = sum(known) / len(known) if known else None
    rows = []
    for p in proposal.states:
        speed = ns_per_day or measured.get(p.temperature_k) or usual
        # the replicas run side by side: the wall time is the longest one's (a new replica runs its whole length)
        longest = p.production_ps - (p.run_ps if p.replicas <= p.run_replicas else 0.0)
        rows.append(asdict(p) | {"ns_per_day": speed, "device_hours": device_hours(max(p.added_ps, 0.0), speed),
                                 "wall_hours": device_hours(max(longest, 0.0), speed)})
    hours = [r["device_hours"] for r in rows]
    walls = [r["wall_hours"] for r in rows]
    return {
        "series": series,
        "states": [asdict(s) for s in states],
        "noise_factor": states[0].noise_factor if states else None,
        "noise_check": [asdict(c) | {"ratio": c.ratio} for c in noise_check(states)],
        "now": asdict(predict(states)),
        "proposal": asdict(proposal) | {"states": rows},
        "ns_per_day_given": ns_per_day,
        "device_hours": None if any(h is None for h in hours) else sum(hours),
        "wall_hours": None if any(h is None for h in walls) else max(walls, default=0.0),
    }


def _num(x, fmt: str, none: str = "–") -> str:
    return none if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def format_series(plan: dict, selection: str) -> str:
    """The terminal table of one series' plan."""
    prop = plan["proposal"]
    now = plan["now"]["ea_stderr_ev"]
    states = {s["temperature_k"]: s for s in plan["states"]}
    lines = [f"{plan['series']}: σ(Ea) target {prop['target_ea_stderr_ev']:g} eV, production per replica at most "
             f"{prop['max_production_ps']:g} ps (D of {selection})"]
    if plan["noise_check"]:
        checks = ", ".join(f"{c['temperature_k']:g} K {c['measured_rel_stderr']:.3g} vs {c['model_rel_stderr']:.3g}"
                           for c in plan["noise_check"])
        lines.append(f"  σ(D)/D measured vs model (one defect's random walk): {checks}; noise factor "
                     f"κ = {plan['noise_factor']:.3g} (the model's σ times κ from here on)")
    else:
        lines.append("  no state has enough events to check the model's σ(D)/D against: κ = 1 (the estimator's own "
                     "constant for one defect's random walk)")
    head = (f"  {'T (K)':>7} {'run':>14} {'events':>7} {'rate/ns':>9} {'σD/D now':>15} │ {'plan':>14} "
            f"{'+sim ns':>8} {'events':>8} {'σD/D':>7} {'meV/ns':>7} {'ns/day':>7} {'dev-h':>7}  note")
    lines += [head, "  " + "─" * (len(head) + 8)]
    for p in prop["states"]:
        s = states.get(p["temperature_k"], {})
        measured = None
        if s.get("d_cm2_s") and s.get("d_stderr_cm2_s"):
            measured = s["d_stderr_cm2_s"] / s["d_cm2_s"]
        rate = p["rate_per_ps"]
        source = {"measured": "", "rate-law": "*", "prior": "†"}.get(p["rate_source"], "")
        lines.append(
            f"  {p['temperature_k']:>7g} {p['run_replicas']:>3} × {_num(p['run_ps'], '.4g'):>8} "
            f"{s.get('events', 0):>7} {_num(None if rate is None else rate * 1000, '.3g'):>8}{source or ' '} "
            f"{_num(measured, '.3f'):>15} │ {p['replicas']:>3} × {_num(p['production_ps'], '.4g'):>8} "
            f"{p['added_ps'] / 1000:>8.3g} {_num(p['events'], '.0f'):>8} {_num(p['d_rel_stderr'], '.3f'):>7} "
            f"{_num(None if p['marginal_ev_per_ns'] is None else 1000 * p['marginal_ev_per_ns'], '.3g'):>7} "
            f"{_num(p['ns_per_day'], '.3g'):>7} {_num(p['device_hours'], '.3g'):>7}  "
            + ("" if p["in_fit"] else p["note"]))
    verdict = (f"predicted σ(Ea) {_num(prop['ea_stderr_ev'], '.3g')} eV" if prop["reachable"]
               else f"UNREACHABLE under the cap: the cap gives σ(Ea) {_num(prop['best_ea_stderr_ev'], '.3g')} eV")
    lines.append(f"  now: σ(Ea) {_num(now, '.3g')} eV (model) → {verdict}; simulated {prop['simulated_ps'] / 1000:.4g} "
                 f"ns in all, {prop['added_ps'] / 1000:.4g} ns to add, "
                 + (f"{plan['device_hours']:.3g} device-hours ({plan['wall_hours']:.3g} h of wall time with every "
                    "run on its own device)" if plan["device_hours"] is not None
                    else "device-hours unknown (no throughput measured: give --ns-per-day)"))
    lines += [f"  note: {n}" for n in prop["notes"]]
    lines.append("  (* rate from the Arrhenius law of the other temperatures' rates, † from the prior; meV/ns: how "
                 "much σ(Ea) falls per extra ns simulated there)")
    return "\n".join(lines)


def cmd_plan(args) -> int:
    from analysis.study import analyse_study
    from inputs.study import load_study

    study = load_study(args.study)
    study_dir = Path(args.root) / study.name
    target = args.target_ea_stderr or study.precision.ea_stderr_ev or DEFAULT_TARGET_EV
    cap = args.max_production_ps or study.precision.max_production_ps or DEFAULT_CAP_FACTOR * study.md.production_ps
    if args.replicas is not None and args.replicas < 1:
        raise InputError(f"--replicas must be at least 1, got {args.replicas}")
    prior = _prior(args)
    analysis = analyse_study(study_dir) if _has_finished_runs(study_dir) else None
    if analysis is None and prior is None:
        raise InputError(f"{study_dir} has no finished runs: the planner needs what runs tell or a prior. Run a "
                         f"short pilot first (python -m driver run --study {args.study} with a short "
                         "md.production_ps), or give --prior-ea with --prior-rate-per-ps or --prior-d0")
    if analysis is None:
        series = args.potential or list(study.potentials)
        selection = study.analysis.selection
    else:
        series = args.potential or sorted({r.series for r in analysis.results if r.potential in study.potentials})
        selection = analysis.selection
    plans = []
    for name in series:
        states = prior_states(study, name, prior) if analysis is None else None
        plan = plan_series(analysis, name, target, cap, args.replicas or (len(study.seeds) if states else None),
                           args.temperature, prior, args.ns_per_day, states, args.drop)
        plans.append(plan)
        print(format_series(plan, selection) + "\n")
    out = Path(args.out) if args.out else study_dir / PLAN_FILE
    atomic_write_text(out, json_dumps({"study": study.name, "study_dir": str(study_dir), "selection": selection,
                                       "target_ea_stderr_ev": target, "max_production_ps": cap, "series": plans},
                                      indent=1) + "\n")
    print(f"plan: {out}")
    return 0


def _has_finished_runs(study_dir: Path) -> bool:
    from core.rundir import find_runs

    if not study_dir.is_dir():
        return False
    try:
        return any(run.is_finished(s) for run, s in find_runs(study_dir))
    except InputError:  # a directory without run directories
        return False


def prior_states(study, series: str, prior):
    """The states of a study not run yet, known from a prior alone (nothing run, κ = 1)."""
    from analysis.plan import StateKnowledge, calibrated

    an = study.analysis
    return calibrated([StateKnowledge(t, 0, 0.0, 0, None, None, window_start_events=an.events_before_window,
                                      min_events=an.min_events, potential=series) for t in study.temperatures_k],
                      prior, an.min_window_start_ps)


def _prior(args):
    from analysis.plan import Prior

    if args.prior_ea is None:
        if args.prior_rate_per_ps is not None or args.prior_d0 is not None:
            raise InputError("--prior-rate-per-ps and --prior-d0 need --prior-ea (the prior's activation energy)")
        return None
    if (args.prior_rate_per_ps is None) == (args.prior_d0 is None):
        raise InputError("--prior-ea needs one prefactor: --prior-rate-per-ps (events per ps) or --prior-d0 (the "
                         "defect's D0 in cm²/s, with --jump-angstrom)")
    if args.prior_d0 is not None:
        if args.jump_angstrom is None:
            raise InputError("--prior-d0 needs --jump-angstrom, the defect's jump length (D = rate · jump² / 6)")
        return Prior(args.prior_ea, 6.0 * args.prior_d0 / 1e-4 / args.jump_angstrom**2)
    return Prior(args.prior_ea, args.prior_rate_per_ps)


def add_arguments(p) -> None:
    """The ``plan`` subcommand's options (``--study``, ``--root``, ``--potential``, ``--temperature`` as
    ``render``/``run`` have them)."""
    from core import cli

    p.add_argument("--study", default="default", help="built-in study name or path of a .toml file")
    p.add_argument("--root", default="runs", help="where its run directories are (default: runs)")
    p.add_argument("--potential", action="append", help="plan this Arrhenius series only (repeatable; default: "
                                                        "every series of the study's potentials)")
    p.add_argument("--temperature", type=cli.positive_number, action="append",
                   help="the temperature ladder to plan (K, repeatable; a new one takes its rate from the others)")
    p.add_argument("--target-ea-stderr", type=cli.positive_number,
                   help=f"σ(Ea) target in eV (default: the study's precision.ea_stderr_ev, else {DEFAULT_TARGET_EV})")
    p.add_argument("--max-production-ps", type=cli.positive_number,
                   help="cap on production per replica, ps (default: the study's precision.max_production_ps, "
                        f"else {DEFAULT_CAP_FACTOR:g} × md.production_ps)")
    p.add_argument("--replicas", type=int, help="replicas per temperature (default: as run; never fewer)")
    p.add_argument("--drop", action="store_true", help="leave out a temperature not in the fit yet where the "
                                                       "target costs less without it (default: name it in a note)")
    p.add_argument("--prior-ea", type=cli.positive_number, help="a prior activation energy (eV) for temperatures "
                                                                "without events")
    p.add_argument("--prior-rate-per-ps", type=cli.positive_number,
                   help="the prior's prefactor: migration events per ps at infinite temperature")
    p.add_argument("--prior-d0", type=cli.positive_number, help="the prior's prefactor as the defect's D0 (cm²/s)")
    p.add_argument("--jump-angstrom", type=cli.positive_number, help="the defect's jump length (Å), with --prior-d0")
    p.add_argument("--ns-per-day", type=cli.positive_number,
                   help="throughput per run (simulated ns per day) for the device-hours (default: measured from "
                        "the study's LAMMPS logs)")
    p.add_argument("--out", help=f"the plan's JSON (default: <study dir>/{PLAN_FILE})")
    p.set_defaults(fn=cmd_plan)
