import pytest

from core.errors import InputError
from inputs.study import builtin_studies, load_study, study_from_dict
from tests.conftest import make_study, study_dict


def test_builtin_studies_load():
    assert {"default", "paper"} <= set(builtin_studies())
    d = load_study("default")
    assert d.potentials[0] == "fumi-tosi" and "mace-mpa-0" in d.potentials and 400.0 in d.temperatures_k
    p = load_study("paper")
    assert p.md.production_ps == 9000.0 and len(p.potentials) == 3


def test_builtin_studies_resolve_events():
    """The residence filter spans several dumped frames (one frame would switch it off) and stays well below a
    defect's residence time (several ps at these temperatures)."""
    for name in builtin_studies():
        s = load_study(name)
        frames = s.analysis.residence_ps / s.md.dump_interval_ps
        assert 3 <= frames + 1e-9 and s.analysis.residence_ps <= 2.0, (name, frames)


def test_study_file_by_path(tmp_path):
    import pathlib
    path = tmp_path / "mine.toml"
    path.write_text(pathlib.Path(load_study("default").source).read_text().replace('"default"', '"mine"', 1))
    assert load_study(path).name == "mine"


def test_restricted_keeps_the_rest():
    s = make_study().restricted(temperatures_k=(450.0,))
    assert s.temperatures_k == (450.0,) and s.md == make_study().md


@pytest.mark.parametrize("changes, field, message", [
    ({"temperatures_k": [400, 0]}, "temperatures_k", "positive"),
    ({"temperatures_k": [-5]}, "temperatures_k", "positive"),
    ({"temperatures_k": [400, 400]}, "temperatures_k", "duplicate"),
    ({"seeds": [1, 1]}, "seeds", "duplicate"),
    ({"md.timestep_fs": 0}, "md.timestep_fs", "positive"),
    ({"md.timestep_fs": -1.0}, "md.timestep_fs", "positive"),
    ({"md.dump_interval_ps": 5.0}, "md.dump_interval_ps", "longer than md.production_ps"),
    ({"md.dump_interval_ps": 0.0015}, "md.dump_interval_ps", "whole number"),
    ({"md.timestep_fs": "1"}, "md.timestep_fs", "expected a number"),
    ({"md.production_ps": None}, "md.production_ps", "missing"),
    ({"md.typo_ps": 3}, "md.typo_ps", "unknown key"),
    ({"temperature": 3}, "temperature", "unknown key"),
    ({"seeds": None}, "seeds", "missing"),
    ({"potentials": []}, "potentials", "at least one"),
    ({"system.defect": "antisite"}, "system.defect", "not one of"),
    ({"system.supercell": [3, 3]}, "system.supercell", "expected a list of 3"),
    ({"analysis.selection": "all"}, "analysis.selection", "not one of"),
    ({"analysis.window_ps": [0.5, 0.2]}, "analysis.window_ps", "need 0 < start < end"),
    ({"analysis.residence_ps": 1.0}, "analysis.residence_ps", "more than half the production run"),
    ({"system.volume": "npt", "md.npt_ps": 0.101}, "md.npt_ps", "even number of timesteps"),  # its half averages
    ({"system.volume": "npt"}, "md.npt_ps", "positive length"),
    ({"md.npt_ps": 0.1}, "md.npt_ps", "used with system.volume = \"npt\" only"),
])
def test_bad_study_names_file_and_field(changes, field, message):
    with pytest.raises(InputError) as e:
        study_from_dict(study_dict(**changes), source="bad.toml")
    assert str(e.value).startswith(f"bad.toml: {field}") and message in str(e.value)


def test_unknown_study_lists_the_choices():
    with pytest.raises(InputError, match="default"):
        load_study("nosuchstudy")


def test_invalid_toml(tmp_path):
    (tmp_path / "x.toml").write_text("name = [\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_study(tmp_path / "x.toml")
