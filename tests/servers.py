"""Throwaway Redis and PostgreSQL servers for fault tests.

Each server runs on 127.0.0.1 at a free port, keeps all of its files in its own temporary directory and
can be stopped, started again (same port, same data) and restarted, so tests can simulate an outage
without touching the machine's own servers (127.0.0.1:6379 and 127.0.0.1:5432 are never used)::

    reason = redis_server_missing()
    if reason:
        pytest.skip(reason)
    with ThrowawayRedis() as server:
        client = redis.Redis.from_url(server.url)
        ...
        server.restart()

PostgreSQL refuses to run as root: when the tests run as root, ``initdb``, ``pg_ctl`` and ``postgres``
run as the ``postgres`` OS user through ``runuser -u postgres --`` and the temporary directory is
handed over to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

from openflix.jobs.worker import pid_alive

__all__ = [
    "ServerError",
    "ThrowawayPostgres",
    "ThrowawayRedis",
    "free_port",
    "postgres_missing",
    "redis_server_missing",
]

HOST = "127.0.0.1"
REDIS_START_TIMEOUT = 10.0
POSTGRES_START_TIMEOUT = 20.0


class ServerError(RuntimeError):
    """A throwaway server failed to start or stop; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it from its ephemeral range).

    The port is only free at the time of the call: another process may take it before the server binds,
    which the servers below report as a start failure with the log tail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, or a note that it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    """True if any non-zombie process is in process group ``pgid`` (Linux /proc; False elsewhere)."""
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


# ---------------------------------------------------------------------------------------------- Redis


def _redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def redis_server_missing() -> str | None:
    """A skip reason if ``redis-server`` is not on PATH, else None."""
    if _redis_server_binary() is None:
        return "redis-server not found on PATH (apt-get install redis-server)"
    return None


def _redis_ping(port: int, timeout: float = 1.0) -> bool:
    """True if the Redis server on ``port`` answers PING with PONG (not LOADING or an error)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class _Throwaway(ABC):
    """A server started for a test: a context manager that starts it and always cleans up."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ThrowawayRedis(_Throwaway):
    """A ``redis-server`` on 127.0.0.1 at a free port with persistence off (``--save "" --appendonly no``).

    Data lives only in memory, so a stop or restart loses every key. Use as a context manager; the
    temporary directory (working dir and log) is removed on exit.
    """

    def __init__(
        self,
        port: int | None = None,
        start_timeout: float = REDIS_START_TIMEOUT,
        base_dir: str | Path | None = None,
    ) -> None:
        """``port`` defaults to free_port(); the temporary directory goes under ``base_dir`` (default: the
        system temp dir)."""
        self.port: int = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self.base_dir = base_dir
        self.tmpdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- properties
    @property
    def url(self) -> str:
        """The redis-py URL of database 0, ``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self._dir / "redis.log"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def _dir(self) -> Path:
        if self.tmpdir is None:
            raise ServerError("ThrowawayRedis is not set up; use it as a context manager or call start()")
        return self.tmpdir

    # -- lifecycle
    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        if self.running:
            return
        binary = _redis_server_binary()
        if binary is None:
            raise ServerError("redis-server not found on PATH")
        if self.tmpdir is None:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="openflix-redis-", dir=self.base_dir))
        data = self._dir / "data"
        data.mkdir(exist_ok=True)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(data),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--databases", "16",
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.start_timeout
        while not _redis_ping(self.port):
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ServerError(
                    f"redis-server on port {self.port} exited with {code}:\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"redis-server on port {self.port} did not answer PING within {self.start_timeout} s:\n"
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the server with ``sig`` (SIGTERM: clean shutdown; SIGKILL: crash), then SIGKILL if needed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    def kill(self) -> None:
        """Crash the server (SIGKILL)."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """Stop, then start again on the same port (all keys are lost since persistence is off)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory."""
        try:
            self.stop()
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None

    def __repr__(self) -> str:
        return f"ThrowawayRedis(port={self.port}, running={self.running})"


# ----------------------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``$OPENFLIX_PG_BINDIR`` wins; then the newest Debian ``/usr/lib/postgresql/N/bin``; then ``initdb``
    on PATH.
    """
    candidates: list[Path] = []
    env = os.environ.get("OPENFLIX_PG_BINDIR")
    if env:
        candidates.append(Path(env))

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def postgres_missing() -> str | None:
    """A skip reason if the PostgreSQL server binaries or psycopg are unusable here, else None."""
    if _postgres_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; set OPENFLIX_PG_BINDIR"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    if _is_root():
        if shutil.which("runuser") is None:
            return "running as root but runuser is missing (PostgreSQL refuses to run as root)"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' OS user to run PostgreSQL as"
    return None


class ThrowawayPostgres(_Throwaway):
    """A fresh PostgreSQL cluster in a temporary directory, on 127.0.0.1 at a free port.

    Trust authentication (user ``postgres``, no password), unix socket inside the temporary directory,
    fsync off. Committed rows survive ``stop()``/``start()``/``restart()``; the whole directory is removed
    on exit, also when start-up failed.
    """

    def __init__(
        self,
        port: int | None = None,
        start_timeout: float = POSTGRES_START_TIMEOUT,
        base_dir: str | Path | None = None,
    ) -> None:
        """``port`` defaults to free_port(). The cluster goes under ``base_dir`` (default: the system temp
        dir), which the postgres user must be able to traverse; a tmpfs such as /dev/shm makes initdb about
        twice as fast, at ~40 MB of RAM per cluster."""
        self.port: int = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self.base_dir = base_dir
        self.tmpdir: Path | None = None
        self._bindir: Path | None = None
        self._running = False

    # -- properties
    @property
    def url(self) -> str:
        """The SQLAlchemy URL, ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    @property
    def conninfo(self) -> str:
        """A libpq/psycopg connection string for the ``postgres`` database."""
        return f"host={HOST} port={self.port} user=postgres dbname=postgres"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._dir / "data"

    @property
    def log_path(self) -> Path:
        """The server log written by ``pg_ctl -l``."""
        return self._dir / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's unix socket."""
        return self._dir / "sock"

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._running

    @property
    def _dir(self) -> Path:
        if self.tmpdir is None:
            raise ServerError("ThrowawayPostgres is not set up; use it as a context manager or call start()")
        return self.tmpdir

    # -- helpers
    def _run(self, tool: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool (as the ``postgres`` user when we are root); raise ServerError on failure."""
        assert self._bindir is not None
        cmd = [str(self._bindir / tool), *args]
        if _is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        # Output goes to a file, not a pipe: a daemonised postmaster that inherited the pipe would keep
        # subprocess.run waiting for EOF.
        out_path = self._dir / f"{tool}.out"
        with out_path.open("w") as out:
            try:
                proc = subprocess.run(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd=self._dir, env=env, timeout=timeout, text=True, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise ServerError(f"{tool} timed out after {timeout} s:\n{_tail(out_path)}") from exc
        if proc.returncode != 0:
            raise ServerError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{_tail(out_path)}\n"
                f"--- server log ---\n{_tail(self.log_path)}"
            )
        return proc

    def _setup(self) -> None:
        """Create the temporary directory and ``initdb`` a cluster configured for this port."""
        bindir = _postgres_bindir()
        if bindir is None:
            raise ServerError("PostgreSQL server binaries not found")
        self._bindir = bindir
        # Our own directory directly under the temp root: pytest's tmp_path lives under a 0700 directory
        # owned by root, which the postgres user could not traverse.
        self.tmpdir = Path(tempfile.mkdtemp(prefix="openflix-pg-", dir=self.base_dir))
        self.socket_dir.mkdir()
        if _is_root():
            entry = pwd.getpwnam("postgres")
            for path in (self.tmpdir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            # synchronous_commit stays on: with it off, a commit acknowledged just before stop("immediate")
            # or kill() can be lost, which would break fault tests. fsync=off alone is safe against process
            # crashes (WAL still reaches the OS page cache), only not against OS crashes.
            "full_page_writes": "off",
            "max_connections": "40",
            "shared_buffers": "16MB",
            # DSM segments as files in the data dir, not in /dev/shm: nothing leaks there after a
            # SIGKILL, and small container /dev/shm mounts do not matter.
            "dynamic_shared_memory_type": "mmap",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "timezone": "'UTC'",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# throwaway test server (tests/servers.py)\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _connects(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.conninfo, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _postmaster_pid(self) -> tuple[int | None, int | None]:
        """The postmaster's pid and SysV shared memory id from ``postmaster.pid`` (None where unknown)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None, None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        shmid = None
        if len(lines) > 6 and lines[6].split():
            with contextlib.suppress(ValueError):
                shmid = int(lines[6].split()[-1])
        return pid, shmid

    # -- lifecycle
    def start(self) -> None:
        """Start the server (initdb on first use; same port and data afterwards); wait until it connects."""
        if self._running:
            return
        if self.tmpdir is None:
            self._setup()
        self._running = True  # from here on stop() has something to clean up, even if we fail below
        timeout = int(self.start_timeout)
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", str(timeout),
            timeout=self.start_timeout + 10,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        while not self._connects():
            if time.monotonic() > deadline:
                raise ServerError(
                    f"PostgreSQL on port {self.port} accepted no connection within {self.start_timeout} s:\n"
                    f"{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``mode`` "smart", "fast" (default; rolls back open transactions) or "immediate"
        (crash-like: recovery runs on the next start). Falls back to SIGKILL if pg_ctl fails."""
        if not self._running or self.tmpdir is None:
            return
        self._running = False
        try:
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", timeout=40)
        except ServerError:
            self._kill_postmaster()
            pid, _ = self._postmaster_pid()
            if pid is not None and pid_alive(pid):
                raise

    def kill(self) -> None:
        """Crash the server: SIGKILL to the postmaster and all its backends (recovery runs on the next start).

        pg_ctl starts the postmaster in its own session, so its process group is exactly the server.
        """
        if not self._running or self.tmpdir is None:
            return
        self._running = False
        self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        pid, shmid = self._postmaster_pid()
        if pid is None:
            return
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            group = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group == pid:  # the postmaster leads its own process group: take the backends down too
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (pid_alive(pid) or (group == pid and _group_alive(pid))) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not pid_alive(pid):
            # The postmaster is dead but may linger as a zombie until PID 1 reaps it (seconds here; never
            # without a reaping init). The next postmaster would see its pid in the lock files, find it
            # "running" with kill(pid, 0) and refuse to start, so remove the stale lock files now.
            for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
                lock.unlink(missing_ok=True)
        if shmid is not None and shutil.which("ipcrm"):
            # A killed postmaster leaves its small SysV segment behind; the next start in this data dir
            # would remove it, but close() deletes the data dir.
            subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True, check=False)

    def restart(self, mode: str = "fast") -> None:
        """Stop (``mode`` as in stop()) and start again on the same port with the same data."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server and remove the temporary directory, whatever happened before."""
        try:
            self.stop("immediate")
        except ServerError:
            pass
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None

    def __repr__(self) -> str:
        return f"ThrowawayPostgres(port={self.port}, running={self.running})"
