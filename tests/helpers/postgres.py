"""A throwaway PostgreSQL server for the tests: `initdb` into a temporary folder, `pg_ctl` on a free
port of 127.0.0.1, stopped and removed at the end.

The binaries come from PATH or Debian's /usr/lib/postgresql/<version>/bin (`.ci/run` installs them
where they are missing). PostgreSQL refuses to run as root, so under root (CI) the server runs as
the unprivileged user `nobody`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "litplate"  # the cluster's superuser, trusted from 127.0.0.1 without a password


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None where PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl", path=str(Path(found).resolve().parent)):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """A running cluster; yields its SQLAlchemy URL base, `postgresql+psycopg://USER@HOST:PORT`."""
    # Not under pytest's tmp_path: its folders are private to root, which `nobody` cannot enter.
    data = Path(tempfile.mkdtemp(prefix="litplate-pg-"))
    as_user: dict = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    cluster = data / "cluster"
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run(
            args, check=True, capture_output=True, text=True, cwd=data, timeout=120, **as_user
        )

    try:
        run(str(bin_dir / "initdb"), "-D", str(cluster), "-U", USER, "--auth=trust", "-E", "UTF8")
        # A test server: no unix socket (its default folder may be root's), nothing kept safe.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": "''",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
        }
        with (cluster / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        log = data / "server.log"
        run(str(bin_dir / "pg_ctl"), "-D", str(cluster), "-l", str(log), "-w", "-t", "60", "start")
        try:
            yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(data, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new, empty database on the server; returns its SQLAlchemy URL."""
    import psycopg

    dsn = server_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"
