"""The real-PostgreSQL harness (tests/postgres.py) does what the job-store tests rely on.

Connect through the same SQLAlchemy + psycopg 3 URL form that ``JOBS_DATABASE_URL`` takes,
survive the server going away and coming back on the same port, and leave no process or
directory behind, whether the test passed or failed.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tests.postgres import PostgresServer, child_pids, pid_alive


def process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def pgrep_data_dir(data_dir: Path) -> str:
    """Processes whose command line names this cluster (the postmaster carries ``-D dir``)."""
    done = subprocess.run(
        ["pgrep", "-a", "-f", str(data_dir)], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def test_connect_create_table_and_read_back(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE harness_smoke (id int PRIMARY KEY, word text)"))
            conn.execute(
                sa.text("INSERT INTO harness_smoke VALUES (1, 'привет'), (2, 'мир')"),
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT word FROM harness_smoke ORDER BY id")).all()
            encoding = conn.execute(sa.text("SHOW server_encoding")).scalar_one()
        assert [r.word for r in rows] == ["привет", "мир"]
        assert encoding == "UTF8"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS harness_smoke"))
        engine.dispose()


def test_server_is_loopback_only_unprivileged_and_self_contained(
    postgres_server: PostgresServer,
) -> None:
    engine = sa.create_engine(postgres_server.url())
    try:
        with engine.connect() as conn:
            listen = conn.execute(sa.text("SHOW listen_addresses")).scalar_one()
            port = conn.execute(sa.text("SHOW port")).scalar_one()
            socket_dir = conn.execute(sa.text("SHOW unix_socket_directories")).scalar_one()
            data_dir = conn.execute(sa.text("SHOW data_directory")).scalar_one()
    finally:
        engine.dispose()
    assert listen == "127.0.0.1"
    assert int(port) == postgres_server.port
    assert Path(socket_dir) == postgres_server.socket_dir
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").exists()
    assert Path(data_dir) == postgres_server.data_dir
    assert postgres_server.data_dir.parent == postgres_server.base_dir  # nothing system-wide
    pid = postgres_server.postmaster_pid()
    assert pid is not None
    assert process_uid(pid) != 0  # PostgreSQL refuses root; the harness must not try


def test_outage_then_reconnect_on_the_same_port_with_the_data_intact(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database()
    # pool_pre_ping: a pooled connection that died with the server is replaced, not reused.
    engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE survives (n int)"))
            conn.execute(sa.text("INSERT INTO survives VALUES (7)"))
        port_before = postgres_server.port
        pid_before = postgres_server.postmaster_pid()

        with postgres_server.outage():
            assert not postgres_server.running()
            with pytest.raises(OperationalError), engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        assert postgres_server.running()
        assert postgres_server.port == port_before
        assert postgres_server.postmaster_pid() != pid_before
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT n FROM survives")).scalar_one() == 7

        # A crash-like stop (no shutdown checkpoint) recovers from the WAL on start.
        postgres_server.restart(mode="immediate")
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT n FROM survives")).scalar_one() == 7
    finally:
        engine.dispose()


def test_cleanup_stops_every_process_and_removes_the_directory() -> None:
    with PostgresServer() as server:
        pid = server.postmaster_pid()
        assert pid is not None
        workers = child_pids(pid)
        assert workers, "a running postmaster has background workers"
        assert pgrep_data_dir(server.data_dir)
        base_dir = server.base_dir
    assert not pid_alive(pid)
    assert not [w for w in workers if pid_alive(w)]
    assert pgrep_data_dir(server.data_dir) == ""
    assert not base_dir.exists()


def test_cleanup_also_runs_when_the_test_body_fails() -> None:
    server = PostgresServer()
    pids: list[int | None] = []
    with pytest.raises(ZeroDivisionError), server:
        pids.append(server.postmaster_pid())
        _ = 1 / 0
    (pid,) = pids
    assert pid is not None
    assert not pid_alive(pid)
    assert pgrep_data_dir(server.data_dir) == ""
    assert not server.base_dir.exists()


def test_cleanup_kills_a_server_that_will_not_stop_cleanly() -> None:
    """A stopped-but-hung postmaster (SIGSTOP) cannot shut down; cleanup must still end it."""
    server = PostgresServer()
    with server:
        pid = server.postmaster_pid()
        assert pid is not None
        subprocess.run(["kill", "-STOP", str(pid)], check=True)
        # pg_ctl would wait its full timeout for a frozen server; go straight to the last resort.
        server.kill()
    assert not pid_alive(pid)
    assert pgrep_data_dir(server.data_dir) == ""
    assert not server.base_dir.exists()


def test_a_port_taken_before_the_first_start_moves_the_server_to_another() -> None:
    """The free port is picked before initdb; if something grabs it meanwhile, try another."""
    server = PostgresServer()
    taken = server.port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        with server:
            assert server.running()
            assert server.port != taken
            with psycopg.connect(server.conninfo()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not server.base_dir.exists()
