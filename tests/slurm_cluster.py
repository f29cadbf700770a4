"""A one-node SLURM cluster for the tests: MUNGE, slurmctld and slurmd from Debian's packages (``make slurm``),
started without systemd in a directory of their own (configuration, state, spool, logs, MUNGE key and socket) and
stopped after. Nothing of the machine's own SLURM set-up (``/etc/slurm``, ``/run/munge``) is read or written:
clients find the cluster through ``SLURM_CONF`` (:meth:`OneNodeCluster.env`).

By hand::

    python -m tests.slurm_cluster /tmp/cluster     # starts it, prints the SLURM_CONF to export; Ctrl-C stops it
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: where Debian puts the daemons (not always on a user's PATH)
SBIN = ("/usr/sbin", "/sbin")
#: the node's size as SLURM sees it (config_overrides): more CPUs than array tasks, so that only the array's own
#: throttle (``%N``) limits how many run at once, whatever the machine's core count
NODE_CPUS = 4
#: seconds a job credential lives: how long a requeued job waits before it may start again (SLURM: 120)
CRED_EXPIRE_S = 10
NODE_MEMORY_MB = 4000
NODE = "lif-node"


class ClusterError(RuntimeError):
    pass


def which(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if path is None:
        raise ClusterError(f"{name} not found: install SLURM and MUNGE with `make slurm` (as root; `make test` "
                           "does it), or apt-get install slurmctld slurmd slurm-client munge")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OneNodeCluster:
    """The daemons of a one-node cluster under ``root``; :func:`start` makes one, :meth:`stop` ends it."""

    root: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, base: dict | None = None) -> dict:
        """An environment whose sbatch / squeue / scontrol talk to this cluster."""
        env = dict(os.environ if base is None else base, SLURM_CONF=str(self.conf))
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), *SBIN])
        for k in [k for k in env if k.startswith(("SBATCH_", "SLURM_")) and k != "SLURM_CONF"]:
            del env[k]  # a test run inside a SLURM job must not hand its own job's settings to sbatch
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        out = subprocess.run([which(args[0]), *args[1:]], env=self.env(), capture_output=True, text=True,
                             timeout=timeout)
        if check and out.returncode != 0:
            raise ClusterError(f"{' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
        return out.stdout

    def logs(self) -> str:
        """The daemons' logs (the last lines of each), for a failing test's message."""
        parts = []
        for f in sorted((self.root / "log").glob("*.log")):
            parts.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-25:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel what is left, shut the daemons down (TERM, then KILL), leave the directory for the logs."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--user", getpass.getuser(), check=False)
            deadline = time.monotonic() + 30  # the job steps (slurmstepd) end before their node's daemon does
            while time.monotonic() < deadline and self.run("squeue", "-h", check=False).strip():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):  # the node first: it may still be ending job steps
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs.clear()


def _config(root: Path, user: str, ctld_port: int, d_port: int) -> str:
    host = socket.gethostname()
    return "\n".join([
        "# a one-node cluster for the tests (tests/slurm_cluster.py)",
        "ClusterName=lif-test",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmUser={user}", f"SlurmdUser={user}",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={d_port}",
        "AuthType=auth/munge", "CredType=cred/munge",
        # cred_expire: how long a job credential lives, and so how long SLURM holds a requeued job before it may
        # start again (120 s by default: its begin time); a job started before its old credential expired is
        # killed by slurmd ("Job credential revoked")
        f"AuthInfo=socket={root}/munge/munge.socket,cred_expire={CRED_EXPIRE_S}",
        f"StateSaveLocation={root}/ctld", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log", f"SlurmdLogFile={root}/log/slurmd.log",
        "SlurmctldDebug=info", "SlurmdDebug=info",
        # no cgroups, no accounting database, no MPI: what a container without systemd offers
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "SlurmdParameters=config_overrides",  # the node is as large as declared below, whatever the machine
        "ReturnToService=2",
        "MinJobAge=600",  # finished jobs stay visible to scontrol for the test's checks
        f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} "
        "State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n"


def start(root: Path, timeout_s: float = 60) -> OneNodeCluster:
    """MUNGE, slurmctld and slurmd in the foreground of child processes, their files under ``root``; returns when
    the node is idle (accepting jobs). Raises :class:`ClusterError` naming what did not start."""
    root = Path(root)
    for sub in ("munge", "ctld", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o711)  # MUNGE's socket directory: searchable by the clients
    user = getpass.getuser()
    cluster = OneNodeCluster(root)
    key = root / "munge" / "munge.key"
    if not key.exists():
        subprocess.run([which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o600)
    cluster.conf.write_text(_config(root, user, _free_port(), _free_port()))
    env = cluster.env()

    def spawn(name: str, args: list[str]) -> None:
        log = open(root / "log" / f"{name}.out", "ab")
        cluster.procs[name] = subprocess.Popen([which(name), *args], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)

    try:
        m = root / "munge"
        spawn("munged", ["--foreground", "--force", f"--key-file={key}", f"--socket={m}/munge.socket",
                         f"--pid-file={m}/munged.pid", f"--log-file={root}/log/munged.log", f"--seed-file={m}/seed"])
        _wait(lambda: (m / "munge.socket").exists(), timeout_s, "munged did not create its socket", cluster)
        spawn("slurmctld", ["-D", "-c", "-i"])  # foreground, no saved state (a fresh cluster each time)
        _wait(lambda: cluster.run("scontrol", "ping", check=False).find("UP") >= 0, timeout_s,
              "slurmctld does not answer scontrol ping", cluster)
        spawn("slurmd", ["-D", "-N", NODE])
        _wait(lambda: cluster.run("sinfo", "-h", "-n", NODE, "-o", "%T", check=False).strip() == "idle", timeout_s,
              f"node {NODE} did not become idle", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(ready, timeout_s: float, what: str, cluster: OneNodeCluster) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, p in cluster.procs.items():
            if p.poll() is not None:
                raise ClusterError(f"{name} exited with {p.returncode} while starting\n{cluster.logs()}")
        if ready():
            return
        time.sleep(0.2)
    raise ClusterError(f"{what} within {timeout_s:.0f} s\n{cluster.logs()}")


if __name__ == "__main__":
    import sys

    c = start(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lif-slurm"))
    print(f"export SLURM_CONF={c.conf}   # Ctrl-C stops the cluster")
    try:
        while all(p.poll() is None for p in c.procs.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
