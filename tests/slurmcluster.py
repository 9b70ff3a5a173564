"""A real single-node SLURM for the tests, started and stopped by them.

``start(folder)`` writes a ``slurm.conf`` for this machine (its short host name, its CPU count,
memory below what it has, one partition ``debug``, free ports), starts ``munged`` as user
``munge`` with its own socket, then ``slurmctld`` and ``slurmd`` in the foreground of child
processes, and waits until ``sinfo`` shows the node idle. ``Cluster.stop()`` ends the daemons by
pid. Nothing is installed here: the Debian packages ``slurm-wlm`` and ``munge`` are (``.ci/run``
installs them); ``available()`` says why a cluster cannot start where they are missing.

Every daemon and client finds the configuration through ``SLURM_CONF``; the cluster's
``env`` holds it for the processes a test starts.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
MUNGE_KEY = Path("/etc/munge/munge.key")


def available() -> str | None:
    """None where a cluster can start here, else why not (one line)."""
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "the test cluster's daemons start as root (slurmd runs jobs as their user)"
    if not MUNGE_KEY.exists():
        return f"no munge key at {MUNGE_KEY}: the munge package creates it"
    return None


def every_core() -> None:
    """Let this process (a daemon, and so every job it starts) run on every core of the machine: a
    pytest-xdist worker is pinned to its share (``tests/conftest.py``), and the cluster's jobs would
    otherwise queue on that one core while the other sits idle at the end of the run."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class Cluster:
    folder: Path
    env: dict[str, str]
    partition: str = "debug"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    munge_pid: int | None = None
    munge_dir: Path | None = None

    def run(self, *args: str, check: bool = True) -> str:
        """A SLURM client command against this cluster; its standard output."""
        out = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def stop(self) -> None:
        """Cancel every job still there (a job's processes belong to slurmstepd, which outlives slurmd),
        wait for the queue to empty, then end the daemons by pid."""
        if self.procs and all(p.poll() is None for p in self.procs):
            self.run("scancel", "--full", "--user", "root", check=False)
            deadline = time.monotonic() + 20
            while self.run("squeue", "-h", "-o", "%i", check=False).strip() and time.monotonic() < deadline:
                time.sleep(0.2)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.munge_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.munge_pid, 15)
            deadline = time.monotonic() + 10   # munged writes its seed file as it ends: wait, then clean up
            while time.monotonic() < deadline and Path(f"/proc/{self.munge_pid}").exists():
                time.sleep(0.1)
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)


def config(folder: Path, host: str, cpus: int, memory_mb: int, munge_socket: Path) -> str:
    return "\n".join([
        "ClusterName=normbench-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}", f"SlurmdLogFile={folder / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
        "MpiDefault=none", "ReturnToService=2", "JobRequeue=1", "SchedulerType=sched/builtin",
        "MinJobAge=600", "KillWait=5", "SlurmctldTimeout=30", "SlurmdTimeout=30", "DefMemPerCPU=1024",
        f"NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
        "",
    ])


def start(folder: Path, timeout_s: float = 30.0) -> Cluster:
    """Start munged, slurmctld and slurmd with their state under ``folder``; wait for the idle node."""
    folder = Path(folder)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    # munged runs as user munge, which cannot enter a test's temporary folder (mode 700, root's)
    munge = Path(tempfile.mkdtemp(prefix="normbench-munge-"))
    munge.chmod(0o755)
    shutil.chown(munge, "munge", "munge")
    sock = munge / "munge.socket"
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(config(folder, host, os.cpu_count() or 1, max(512, int(_memory_mb() * 0.6)), sock))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = Cluster(folder, env, munge_dir=munge)
    pidfile = munge / "munged.pid"
    subprocess.run(["runuser", "-u", "munge", "--", _exe("munged"), f"--socket={sock}", f"--pid-file={pidfile}",
                    f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'seed'}",
                    f"--key-file={MUNGE_KEY}"], check=True, timeout=30)
    cluster.munge_pid = int(pidfile.read_text().split()[0])
    try:
        for daemon in ("slurmctld", "slurmd"):
            log = open(folder / f"{daemon}.out", "wb")   # noqa: SIM115 - the daemon's, closed with it
            cluster.procs.append(subprocess.Popen([_exe(daemon), "-D"], env=env, stdout=log, stderr=log,
                                                  preexec_fn=every_core))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = cluster.run("sinfo", "-h", "-o", "%T", check=False).strip()
            if state.startswith("idle"):
                return cluster
            if any(p.poll() is not None for p in cluster.procs):
                break
            time.sleep(0.3)
        logs = " | ".join((folder / f"{d}.out").read_text()[-300:] for d in ("slurmctld", "slurmd"))
        raise RuntimeError(f"the test SLURM did not come up within {timeout_s:.0f} s: {logs}")
    except BaseException:
        cluster.stop()
        raise
