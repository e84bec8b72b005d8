"""Nothing is downloaded at run time: both levels run with every socket connection refused."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import make_fmriprep_dataset
from xaibids.cli.run import main


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every internet (IPv4/IPv6) connection and name lookup; local AF_UNIX sockets
    (multiprocessing's forkserver talks to its workers through one) stay allowed."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] or args)
        raise NetworkUsed(f"xaibids tried to open a network connection: {args[1:] or args}")

    def only_local(original):
        def connect(sock, *args, **kwargs):
            if sock.family == getattr(socket, "AF_UNIX", None):
                return original(sock, *args, **kwargs)
            return refuse(sock, *args, **kwargs)
        return connect

    monkeypatch.setattr(socket.socket, "connect", only_local(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", only_local(socket.socket.connect_ex))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_blocked_sockets_really_block(no_network):
    with pytest.raises(NetworkUsed):
        socket.create_connection(("example.org", 80), timeout=1)
    with pytest.raises(NetworkUsed):
        socket.socket().connect(("127.0.0.1", 9))


def test_both_levels_run_offline(tmp_path, no_network):
    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=("01", "02", "03", "04"),
                                            n_vols=16)
    out = tmp_path / "out"
    common = ["--atlas", "harvard-oxford", "--omp-nthreads", "1", "--nprocs", "2",
              "-w", str(tmp_path / "work"), "--notrack"]
    # the BIDS validator runs too (a local executable), so validation is not skipped here
    assert main([str(bids_dir), str(out), "participant", "-d", f"fmriprep={deriv}",
                 *common]) == 0
    assert len(list(out.glob("sub-*/func/*_timeseries.tsv"))) == 4
    assert main([str(bids_dir), str(out), "group", "-d", f"fmriprep={deriv}", *common,
                 "--skip-bids-validation", "--n-folds", "2", "--n-models", "1", "--epochs", "1",
                 "--reliability-samples", "1", "--n-bootstrap", "10"]) == 0
    assert (out / "group" / "desc-ig_importance.tsv").is_file()
    assert (out / "group.html").is_file()
    assert no_network == []


def _can_unshare_network() -> bool:
    import shutil
    import subprocess

    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_network(),
                    reason="needs 'unshare -n' (root or user namespaces) for a network namespace")
def test_both_levels_run_in_a_namespace_without_network(tmp_path):
    """The same run as a new process in its own network namespace (only a loopback that is
    down): the Nipype workers, the forkserver and the BIDS validator have no network either."""
    import subprocess
    import sys

    bids_dir, deriv = make_fmriprep_dataset(tmp_path, subjects=("01", "02", "03", "04"),
                                            n_vols=16)
    out = tmp_path / "out"
    exe = [sys.executable, "-m", "xaibids.cli.run"]
    common = ["-d", f"fmriprep={deriv}", "--atlas", "harvard-oxford", "--omp-nthreads", "1",
              "--nprocs", "2", "-w", str(tmp_path / "work")]
    for level, extra in (("participant", []),
                         ("group", ["--skip-bids-validation", "--n-folds", "2", "--n-models",
                                    "1", "--epochs", "1", "--reliability-samples", "0",
                                    "--n-bootstrap", "10"])):
        done = subprocess.run(["unshare", "-n", *exe, str(bids_dir), str(out), level, *common,
                               *extra], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(out.glob("sub-*/func/*_timeseries.tsv"))) == 4
    assert (out / "group.html").is_file()
