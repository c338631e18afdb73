"""A real PostgreSQL primary and streaming replica, built from the machine's server binaries
(initdb, pg_basebackup, pg_ctl) in a temporary directory, on free loopback ports.

PostgreSQL refuses to run as root: when the tests do, the servers run as the `postgres` user
(runuser)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


def _server_binaries() -> Path:
    """TIDEMILL_TEST_PG_BIN, else Debian's PostgreSQL, else the binaries pgserver ships (the
    embedded default's, there on every machine that installed Tidemill)."""
    explicit = os.environ.get("TIDEMILL_TEST_PG_BIN")
    if explicit:
        return Path(explicit)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup"))
    if debian:
        return debian[-1].parent
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _runuser() -> str:
    """runuser, which a PATH without the sbin directories does not find."""
    for found in (shutil.which("runuser"), "/usr/sbin/runuser", "/sbin/runuser"):
        if found and Path(found).exists():
            return found
    raise AssertionError("runuser is missing: the servers cannot run as root")


PG_BIN = _server_binaries()


@dataclass(frozen=True)
class Pair:
    primary_port: int
    replica_port: int

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def primary(self, database: str = "postgres") -> str:
        return self.url(self.primary_port, database)

    def replica(self, database: str = "postgres") -> str:
        return self.url(self.replica_port, database)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*args: str | Path) -> None:
    command = [str(arg) for arg in args]
    if os.geteuid() == 0:
        command = [_runuser(), "-u", SERVER_USER, "--", *command]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


def _configure(data: Path, port: int, sockets: Path) -> None:
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{sockets}'\nwal_level = replica\n"
            "max_wal_senders = 4\nhot_standby = on\nfsync = off\n"
            "shared_buffers = 32MB\nmax_connections = 40\n"
        )


@contextlib.contextmanager
def primary_and_replica() -> Iterator[Pair]:
    """Start a primary, clone it with pg_basebackup into a streaming replica, start both;
    stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="tidemill-replica-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    primary, replica = root / "primary", root / "replica"
    pair = Pair(_free_port(), _free_port())
    started: list[Path] = []
    try:
        _run(PG_BIN / "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        _configure(primary, pair.primary_port, root)
        _run(PG_BIN / "pg_ctl", "-D", primary, "-l", root / "primary.log", "-w", "start")
        started.append(primary)
        _run(
            PG_BIN / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(pair.primary_port),
            "-U",
            "postgres",
            "-D",
            replica,
            "-R",  # standby.signal and primary_conninfo: a streaming replica
            "-X",
            "stream",
        )
        with (replica / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {pair.replica_port}\n")
        _run(PG_BIN / "pg_ctl", "-D", replica, "-l", root / "replica.log", "-w", "start")
        started.append(replica)
        yield pair
    finally:
        for data in reversed(started):
            with contextlib.suppress(subprocess.SubprocessError):
                _run(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
