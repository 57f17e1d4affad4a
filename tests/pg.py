"""A throwaway PostgreSQL server on loopback for tests: initdb in a temp dir, pg_ctl start/stop.

The `postgres_url` fixture in conftest.py starts one per test. Uses Debian's `postgresql`
package (binaries under /usr/lib/postgresql/*/bin; .ci/run installs it). PostgreSQL refuses
to run as root, so under root the server runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Optional

class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        raise Unavailable("pg_ctl not found (install Debian's postgresql package)")
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_user() -> Optional[pwd.struct_passwd]:
    """The unprivileged account to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no `postgres` user to run the server as") from None


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """Start a server on a free loopback port; yield its SQLAlchemy URL; stop and delete it after."""
    bin_ = bindir()
    user = server_user()
    prefix = ["runuser", "-u", user.pw_name, "--"] if user else []
    # Under /tmp, not pytest's tmp_path: the server's user must be able to reach its folder.
    root = Path(tempfile.mkdtemp(prefix="speechrnn-pg-"))
    data, logfile, port = root / "data", root / "server.log", free_port()
    if user:
        os.chown(root, user.pw_uid, user.pw_gid)

    def run(*args: str) -> None:
        result = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            server_log = logfile.read_text() if logfile.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}{server_log}")

    try:
        run(str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options, "-w", "start")
        try:
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(bin_ / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
