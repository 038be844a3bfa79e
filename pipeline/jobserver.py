"""A fork server for the workflow's jobs on one machine: import once, fork per job.

A smoke DAG is some 300 jobs of a second of work each, and every one paid 3-6 s of interpreter
and library start-up (torch, gymnasium/MuJoCo, pandas, rliable). On local execution the Snakefile
starts this server once (``onstart``); each job's ``python -m pipeline ...`` then finds it through
``RLREPRO_JOBSERVER`` and, instead of importing anything, hands the server its argv, working
directory, environment and its stdin/stdout/stderr (passed as file descriptors, so the rule's
``> {log}`` redirections hold). The server forks a child that runs :func:`pipeline.cli.main`
exactly as the job would have, and the job exits with the child's status. Signals the job gets
(Snakemake cancelling it, SIGTERM) are forwarded to the child. Nothing else changes: one
Snakemake job per run, the same command text, the same files; a job that finds no server runs
itself, and on a cluster no server is started (jobs run on other machines).

The server must not initialise anything that does not survive a fork: no CUDA context, no
threads, no open database connections; it only imports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading
import traceback
from pathlib import Path

ENV = "RLREPRO_JOBSERVER"
MAX_FDS = 3
_HEADER = struct.Struct("!I")
# the checkout this module belongs to (what ``pipeline.REPO_ROOT`` is), found without importing it
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIRS = ("pipeline", "methods", "envs")


def code_fingerprint(root: str = ROOT) -> list:
    """(path, mtime, size) of every source file of the checkout: a server whose code changed
    on disk since it imported it must not run jobs (they would run the old code)."""
    out = []
    for d in CODE_DIRS:
        for dirpath, dirnames, files in os.walk(os.path.join(root, d)):
            dirnames[:] = sorted(x for x in dirnames if x != "__pycache__")
            for f in sorted(files):
                if f.endswith((".py", ".smk", ".yaml")):
                    st = os.stat(os.path.join(dirpath, f))
                    out.append([os.path.relpath(os.path.join(dirpath, f), root), st.st_mtime_ns, st.st_size])
    return out


# ---------------------------------------------------------------------------------- protocol
def _send_msg(sock: socket.socket, obj: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket, with_fds: bool = False) -> tuple[dict, list[int]]:
    fds: list[int] = []
    if with_fds:
        first, fds, _, _ = socket.recv_fds(sock, 1 << 16, MAX_FDS)
        if len(first) < _HEADER.size:
            first += _recv_exact(sock, _HEADER.size - len(first))
        (n,) = _HEADER.unpack(first[: _HEADER.size])
        body = first[_HEADER.size :]
        body += _recv_exact(sock, n - len(body))
    else:
        (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
        body = _recv_exact(sock, n)
    return json.loads(body), fds


# ------------------------------------------------------------------------------------ client
def _wait_until_ready(sock_path: Path, timeout: float = 120.0) -> bool:
    """The server is started without waiting for it (a workflow with nothing to do should not
    pay its imports), so the first jobs may arrive before it listens: wait for its ``ready``
    marker while its process lives."""
    import time

    ready, pid_file = sock_path.with_name("ready"), sock_path.with_name("pid")
    deadline = time.monotonic() + timeout
    while not ready.exists():
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return False
        if not _alive(pid) or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_via_server(argv: list[str]) -> int | None:
    """Run ``python -m pipeline argv`` in the server's fork; None if no server answers (the
    caller then runs the job itself). Imports nothing heavy."""
    path = os.environ.get(ENV)
    if not path or not _wait_until_ready(Path(path)):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        env = {k: v for k, v in os.environ.items() if k != ENV}
        _send_msg(sock, {"argv": argv, "cwd": os.getcwd(), "env": env, "root": ROOT}, fds=[0, 1, 2])
        reply, _ = _recv_msg(sock)
    except (OSError, ConnectionError):
        sock.close()
        return None
    if "pid" not in reply:  # refused: another checkout's code, or the code changed on disk
        sock.close()
        return None
    pid = int(reply["pid"])

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    try:
        done, _ = _recv_msg(sock)
    except (OSError, ConnectionError):
        # the server went away: the child is its child and may still run; report a failure
        sys.stderr.write("jobserver: lost the connection to the job server\n")
        return 1
    finally:
        sock.close()
    return int(done["rc"])


# ------------------------------------------------------------------------------------ server
PRELOAD = (
    "torch",
    "numpy",
    "pandas",
    "yaml",
    "jsonschema",
    "matplotlib",
    "pipeline.cli",
    "pipeline.run",
    "pipeline.stats",
    "pipeline.figures",
    "pipeline.report",
    "pipeline.claims",
    "pipeline.codehash",
    "rliable.library",
)


def preload() -> None:
    """Import what the jobs import (never mlflow: it opens connections; never CUDA)."""
    import importlib

    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    torch.set_num_threads(1)  # no intra-op pool may exist at fork time
    for mod in PRELOAD:
        importlib.import_module(mod)
    import envs
    import methods

    for name in methods.names():
        methods.load(name)
    for name in envs.names():
        importlib.import_module(envs.module_of(name))


def _child(conn: socket.socket, listener: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the job, run it, exit with its status."""
    try:
        os.setpgid(0, 0)  # a group of its own: the server ends the job with whatever it started
        listener.close()
        conn.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        sys.stdin = os.fdopen(0, "r", closefd=False)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["RLREPRO_FORKED"] = "1"
        sys.argv = ["python -m pipeline", *request["argv"]]
        from pipeline.cli import main

        rc = main(request["argv"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001  (any failure is the job's failure, with its traceback)
        traceback.print_exc()
        rc = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(int(rc or 0))


def _serve_one(conn: socket.socket, listener: socket.socket, fingerprint: list) -> None:
    try:
        request, fds = _recv_msg(conn, with_fds=True)
    except (OSError, ConnectionError, ValueError):
        conn.close()
        return
    refusal = None
    if os.path.realpath(request.get("root", "")) != os.path.realpath(ROOT):
        refusal = f"this server runs the code of {ROOT}"
    elif code_fingerprint() != fingerprint:
        refusal = "the code changed on disk since the server imported it"
    if refusal:
        for fd in fds:
            os.close(fd)
        try:
            _send_msg(conn, {"refused": refusal})
        except OSError:
            pass
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        _child(conn, listener, request, fds)
    for fd in fds:
        os.close(fd)
    exited = threading.Event()
    reap_lock = threading.Lock()

    def wait() -> None:
        # wait for the exit without reaping, so the pid stays ours while `watch` may signal it
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        with reap_lock:
            exited.set()
            _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        rc = 128 - rc if rc < 0 else rc  # killed by a signal: the shell's convention
        try:
            _send_msg(conn, {"rc": rc})
            conn.shutdown(socket.SHUT_RDWR)  # wakes `watch` from its recv
        except OSError:
            pass
        conn.close()

    def watch() -> None:
        """The job ends when its client ends, however it ends (SIGKILL included): a training
        child outliving a job that Snakemake recorded as failed would write that job's outputs
        after the fact, or train the same run twice beside a rerun."""
        try:
            while conn.recv(1):  # the client never sends after its request: data is ignored
                pass
        except OSError:
            pass
        with reap_lock:
            if not exited.is_set():
                _kill_job(pid)

    try:
        _send_msg(conn, {"pid": pid})
    except OSError:
        pass
    threading.Thread(target=wait, daemon=True).start()
    threading.Thread(target=watch, daemon=True).start()


def _kill_job(pid: int) -> None:
    """SIGKILL the job's process group (the child leads one, see ``_child``): no checkpoint is
    written on the way out, the last one on disk stays valid (atomic writes)."""
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
            return
        except (ProcessLookupError, PermissionError):
            continue


def serve(path: str | Path, ready_file: str | Path | None = None, owner: int | None = None) -> None:
    """Preload, listen on the Unix socket ``path`` and fork a child per job, until SIGTERM or
    until the process ``owner`` (the Snakemake that started it) is gone."""
    fingerprint = code_fingerprint()
    preload()
    path = str(path)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if ready_file:
        Path(ready_file).write_text(str(os.getpid()))
    listener.settimeout(0.5)
    try:
        while not stop.is_set():
            if owner is not None and not _alive(owner):
                break
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(None)
            _serve_one(conn, listener, fingerprint)
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def start(
    owner: int, log_path: str | Path, timeout: float = 120.0, cwd: str | Path | None = None, wait: bool = True
) -> tuple[str, int] | None:
    """Start a server for the process ``owner``: ``(socket, pid)``, or None if it did not come
    up (jobs then run themselves). With ``wait``, return once it listens; without, at once (the
    clients wait for it). It serves the checkout in ``cwd`` (default: the current directory,
    the workflow's), whose code ``python -m`` imports."""
    import subprocess
    import tempfile
    import time

    folder = Path(tempfile.mkdtemp(prefix="rlrepro-jobs-"))
    sock, ready = folder / "sock", folder / "ready"
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.jobserver", str(sock), str(ready), str(owner)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=cwd,
        )
    (folder / "pid").write_text(str(proc.pid))
    if not wait:
        return str(sock), proc.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists() and sock.exists():
            return str(sock), proc.pid
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    proc.terminate()
    return None


def stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None, int(sys.argv[3]) if len(sys.argv) > 3 else None)
