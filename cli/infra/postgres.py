"""A private PostgreSQL server in its own data folder, from Debian's postgresql package.

PostgreSQL refuses to run as root, so when we are root the folder is handed to the
`postgres` system user and the server runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cli.infra.errors import InfraError
from cli.infra.process import free_port, pid_alive, port_open, spawn, terminate, wait_until

SERVER_USER = "postgres"


def find_bin_dir() -> Path:
    """The folder that holds initdb and postgres, or raise with what to install."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if Path(folder, "initdb").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise InfraError(
        "PostgreSQL server not found: install it (Debian: apt-get install postgresql), "
        "set INFERHOOK_DATABASE_URL to an existing server, or run `docker compose up`."
    )


@dataclass
class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1 with trust auth for the `inferhook` role."""

    data_dir: Path
    port: int = 0
    database: str = "inferhook"
    user: str = "inferhook"
    durable: bool = True
    pid: int | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "postgres.pid"

    def _as_server_user(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", SERVER_USER, "--", *args]

    def _let_server_user_reach(self) -> None:
        """Give every folder above the data dir the search bit, so the server user can reach it."""
        if os.geteuid() != 0:
            return
        for folder in self.data_dir.resolve().parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(folder, mode | stat.S_IXOTH)

    def _hand_over(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            for root, dirs, files in os.walk(path):
                os.chown(root, entry.pw_uid, entry.pw_gid)
                for name in dirs + files:
                    os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 60.0) -> None:
        """initdb on first use, start the server and create the database."""
        bin_dir = find_bin_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o755)
        self._let_server_user_reach()
        port_file = self.data_dir / "port"
        if not self.port and port_file.exists():
            self.port = int(port_file.read_text())
        self.port = self.port or free_port()
        if port_open(self.port):
            raise InfraError(f"port {self.port} is taken: stop what listens there or pick another")
        port_file.write_text(str(self.port))
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh:
            self.pgdata.mkdir(exist_ok=True)
            self._hand_over(self.pgdata)
            init = subprocess.run(
                self._as_server_user([str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U",
                                      self.user, "--auth=trust", "-E", "UTF8", "--no-sync"]),
                capture_output=True, text=True, check=False,
            )
            if init.returncode != 0:
                raise InfraError(f"initdb failed:\n{init.stdout}{init.stderr}")
        self.log_path.write_bytes(b"")  # readiness is read from this log: start it empty
        self._hand_over(self.log_path)
        options = [
            "-c", "listen_addresses=127.0.0.1", "-p", str(self.port),
            "-c", f"unix_socket_directories={self.pgdata}",
            "-c", "max_connections=300", "-c", "shared_buffers=128MB",
        ]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off"]
        proc = spawn(self._as_server_user([str(bin_dir / "postgres"), "-D", str(self.pgdata),
                                           *options]), log=self.log_path)
        self.pid = proc.pid
        self.pid_path.write_text(str(proc.pid))

        def ready() -> bool:
            if proc.poll() is not None:
                raise InfraError(f"PostgreSQL exited at start; see {self.log_path}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            return "ready to accept connections" in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout=timeout, what="PostgreSQL", log=self.log_path)
        if fresh:
            created = subprocess.run(
                [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                 "-U", self.user, self.database],
                capture_output=True, text=True, check=False,
            )
            if created.returncode != 0:
                raise InfraError(f"createdb failed:\n{created.stderr}")

    def running_pid(self) -> int | None:
        """The pid of a server started earlier from this data folder, if it still runs."""
        if not self.pid_path.exists():
            return None
        pid = int(self.pid_path.read_text())
        return pid if pid_alive(pid) else None

    def stop(self, *, immediate: bool = False) -> None:
        """Fast shutdown: SIGINT (SIGTERM would wait for every client to disconnect).

        `immediate`: SIGQUIT, `pg_ctl stop -m immediate`: every server process quits at
        once without a checkpoint, so the next start runs crash recovery (fault tests).
        """
        pid = self.pid or self.running_pid()
        if pid is not None:
            terminate(pid, first=signal.SIGQUIT if immediate else signal.SIGINT)
        self.pid_path.unlink(missing_ok=True)
        self.pid = None
