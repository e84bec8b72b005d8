"""A throw-away single-node SLURM cluster on loopback, for the tests of the SLURM recipes.

Debian's ``slurm-wlm`` and ``munge`` packages provide the daemons; nothing is installed or
changed outside a temporary folder: a fresh munge key, ``munged`` on its own socket, a
``slurm.conf`` with one node (this machine, ``localhost``) in a ``debug`` partition, and
``slurmctld``/``slurmd`` in the foreground (``-D``) as child processes. Every daemon is stopped by
its own PID when the context ends.

    with slurm_cluster() as cluster:
        subprocess.run(["sbatch", "--wait", "job.sh"], env=cluster.env)

:func:`slurm_cluster` raises :class:`SlurmUnavailable` (the pytest fixture turns it into a skip
with the reason) when the binaries are missing or the tests do not run as root
(``SlurmUser=root`` and jobs run as the submitting user). Where both are given, a cluster that
does not start (a daemon exits, or the node is not idle within ``timeout`` seconds) raises
:class:`SlurmStartFailed`, which the fixture reports as an error: a broken set-up must not pass
as a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol")
#: Memory left to the machine itself when sizing the node (MB).
MEMORY_MARGIN_MB = 1024


class SlurmUnavailable(RuntimeError):
    """The cluster cannot be started here; the message says why (used as the skip reason)."""


class SlurmStartFailed(RuntimeError):
    """The binaries are there and we are root, but the cluster did not start (with its logs)."""


@dataclass
class SlurmCluster:
    root: Path
    env: dict
    cpus: int
    memory_mb: int
    processes: dict = field(default_factory=dict)

    def run(self, *args, **kwargs) -> subprocess.CompletedProcess:
        """A SLURM client command (``sinfo``, ``sbatch`` …) against this cluster."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        return subprocess.run(list(args), env=kwargs.pop("env", self.env), **kwargs)

    def logs(self) -> str:
        """The daemons' logs (for assertion messages)."""
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name} ---\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmUnavailable("cannot read MemTotal from /proc/meminfo")


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None
            and not Path("/usr/sbin", name).exists()]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


SLURM_CONF = """\
ClusterName=xaibidstest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
SchedulerParameters=sched_interval=1
DefMemPerCPU=256
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def slurm_cluster(timeout: float = 30, cpus: int | None = None):
    """Start munged, slurmctld and slurmd on loopback; yield a :class:`SlurmCluster`; stop them."""
    missing = missing_binaries()
    if missing:
        raise SlurmUnavailable(f"SLURM/munge binaries not installed ({', '.join(missing)}); "
                               "install Debian's slurm-wlm and munge")
    if os.geteuid() != 0:
        raise SlurmUnavailable("the test cluster runs its daemons as root (SlurmUser=root)")
    cpus = cpus or os.cpu_count() or 1
    memory_mb = max(_memory_mb() - MEMORY_MARGIN_MB, 512)
    # A short path: the munge socket path must fit in sockaddr_un (108 bytes).
    root = Path(tempfile.mkdtemp(prefix="xslurm-"))
    os.chmod(root, 0o700)
    for sub in ("state", "spool", "munge"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(root=root, munge_socket=munge_socket, cpus=cpus,
                                      memory_mb=memory_mb, ctld_port=_free_port(),
                                      slurmd_port=_free_port()))
    env = dict(os.environ, SLURM_CONF=str(conf))
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_"))]:
        if var != "SLURM_CONF":
            env.pop(var)
    # Nipype's batch plugins name their jobs after $LOGNAME, which login shells set.
    env.setdefault("LOGNAME", pwd.getpwuid(os.getuid()).pw_name)
    cluster = SlurmCluster(root=root, env=env, cpus=cpus, memory_mb=memory_mb)
    try:
        cluster.processes["munged"] = subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--socket={munge_socket}",
             f"--key-file={key}", f"--pid-file={root}/munge/munged.pid",
             f"--seed-file={root}/munge/munged.seed", f"--log-file={root}/munged.log"],
            stdout=subprocess.DEVNULL, stderr=open(root / "munged.stderr", "w"), env=env)
        _wait_for(lambda: munge_socket.exists(), 10, cluster, "munged did not create its socket")
        cluster.processes["slurmctld"] = subprocess.Popen(
            [_which("slurmctld"), "-D", "-i", "-f", str(conf)],
            stdout=subprocess.DEVNULL, stderr=open(root / "slurmctld.stderr", "w"), env=env)
        cluster.processes["slurmd"] = subprocess.Popen(
            [_which("slurmd"), "-D", "-N", "localhost", "-f", str(conf)],
            stdout=subprocess.DEVNULL, stderr=open(root / "slurmd.stderr", "w"), env=env)

        def idle() -> bool:
            try:
                proc = cluster.run("sinfo", "-h", "-N", "-o", "%N %t", timeout=5)
            except subprocess.TimeoutExpired:
                return False
            return proc.returncode == 0 and "localhost idle" in proc.stdout

        _wait_for(idle, timeout, cluster, f"the node was not idle within {timeout:.0f} s")
        yield cluster
    finally:
        for name in ("slurmd", "slurmctld", "munged"):
            if name in cluster.processes:
                _stop(cluster.processes[name])
        if not os.environ.get("XAIBIDS_KEEP_SLURM"):
            shutil.rmtree(root, ignore_errors=True)


def _wait_for(condition, timeout: float, cluster: SlurmCluster, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [n for n, p in cluster.processes.items() if p.poll() is not None]
        if dead:
            stderr = "".join((cluster.root / f"{n}.stderr").read_text(errors="replace")[-800:]
                             for n in dead)
            raise SlurmStartFailed(f"{', '.join(dead)} exited at start-up: {stderr.strip()}"
                                   f"\n{cluster.logs()[-1500:]}")
        if condition():
            return
        time.sleep(0.5)
    raise SlurmStartFailed(f"{message}\n{cluster.logs()[-1500:]}")
