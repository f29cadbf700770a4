"""The installed package is complete: a wheel built from this repository, installed into a fresh virtual
environment (its dependencies borrowed from this one, the repository nowhere on its path), renders cluster decks
with the built-in site files and has every data file the code reads."""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the repository's files (a build writes build/ and *.egg-info where it runs)."""
    src = tmp_path_factory.mktemp("src") / "lif-diffusion"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=600)
    (whl,) = out.glob("lif_diffusion-*.whl")
    return whl


def test_wheel_holds_every_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in [*ROOT.glob("inputs/*/*.toml"), *ROOT.glob("templates/*.j2"), ROOT / "potentials" / "catalog.toml",
                 *ROOT.glob("finetune/hyperparams/*.toml")]:
        assert str(data.relative_to(ROOT)) in names, f"{data.relative_to(ROOT)} is missing from the wheel"


@pytest.mark.integration
def test_installed_wheel_renders_cluster_decks_with_a_built_in_site(wheel, tmp_path):
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # the dependencies (numpy, jinja2, ...) from this environment, after the fresh one's own packages; .pth files
    # there (this repository's editable install) are not processed, so the project comes from the wheel alone
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(py), "-c", "import driver, core; print(driver.__file__, core.__file__)"], cwd=work,
                           capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and all(Path(p).is_relative_to(venv) for p in where.stdout.split()), where
    out = subprocess.run([str(py), "-m", "driver", "render", "--study", "default", "--potential", "fumi-tosi",
                          "--temperature", "400", "--site", "generic-slurm", "--root", str(work / "runs")],
                         cwd=work, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    cluster = work / "runs" / "default" / "cluster"
    assert (cluster / "job-cpu.sh").is_file() and (cluster / "submit.sh").is_file()
    assert "#SBATCH --array=0-1" in (cluster / "job-cpu.sh").read_text()  # two replicas at 400 K
