#!/usr/bin/env bash
# `make slurm`: SLURM (slurmctld, slurmd, the client commands) and MUNGE from Debian's packages, for the tests that
# run the rendered array jobs on a real one-node cluster (tests/test_slurm.py; tests/slurm_cluster.py starts the
# daemons, without systemd, in a temporary directory and stops them after). Installing needs root (CI runs as root;
# elsewhere password-less sudo is used when there is one); the .debs are kept in the cache, so reinstalling on a
# machine that keeps the cache downloads nothing. No service is enabled or started: the daemons run only while the
# tests do, from their own configuration (SLURM_CONF).
#
#   output  slurmctld, slurmd, sbatch, squeue, scontrol, munged installed system-wide; .debs in <cache>/slurm/debs
# Environment: LIF_DIFFUSION_CACHE.
set -euo pipefail

CACHE=${LIF_DIFFUSION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lif-diffusion}
PKGS=(slurmctld slurmd slurm-client munge)
say() { printf '\033[1m[make slurm]\033[0m %s\n' "$*" >&2; }
die() { printf '[make slurm] error: %s\n' "$*" >&2; exit 1; }

installed() {
  local p
  for p in slurmctld slurmd sbatch squeue scontrol munged mungekey; do
    command -v "$p" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null 2>&1 || return 1
  done
}

version() { dpkg-query -W -f '${Version}' slurmctld 2>/dev/null || echo "(not from a Debian package)"; }

if installed; then
  say "SLURM is installed: $(version)"
  exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: this recipe needs a Debian-like machine; install SLURM \
(slurmctld, slurmd, the client commands) and MUNGE with your package manager instead"
SUDO=()
if [ "$(id -u)" != 0 ]; then
  sudo -n true 2>/dev/null || die "installing SLURM's packages needs root: run 'sudo make slurm' (or: sudo apt-get \
install ${PKGS[*]}); nothing is started or enabled, the tests run the daemons themselves"
  SUDO=(sudo -n)
fi

debs="$CACHE/slurm/debs"
mkdir -p "$debs/partial"
# the .debs go to the cache (not /var/cache/apt, which Debian's container images empty after each install)
APT_OPTS=(-q -o "Dir::Cache::archives=$debs" -o "APT::Keep-Downloaded-Packages=true")
say "updating the package lists"
"${SUDO[@]}" apt-get -q update >/dev/null || die "apt-get update failed"
say "installing ${PKGS[*]} ($(find "$debs" -maxdepth 1 -name '*.deb' | wc -l) .deb(s) already in $debs)"
# without an init (containers, CI) the packages' scripts start no service; where systemd runs, the services they
# start read /etc/slurm/slurm.conf, which this recipe never writes, and do not disturb the tests' own daemons
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" -y install --no-install-recommends \
    "${PKGS[@]}" > "$CACHE/slurm/install.log" 2>&1; then
  tail -n 20 "$CACHE/slurm/install.log" >&2
  die "apt-get install ${PKGS[*]} failed (the log: $CACHE/slurm/install.log)"
fi
installed || die "the packages installed, but slurmctld, slurmd, sbatch or munged is still missing"
say "SLURM installed: $(version)"
