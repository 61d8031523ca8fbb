"""Data folders become 0700 and their files 0600, new files are born that way."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from services.kit.private_files import data_folders, make_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_existing_files_of_an_older_version_are_made_owner_only(tmp_path):
    data = tmp_path / "var"
    (data / "bus").mkdir(parents=True)
    files = [data / "events.sqlite3", data / "events.sqlite3-wal", data / "bus" / "log.0"]
    for path in files:
        path.write_bytes(b"x")
        path.chmod(0o644)
    data.chmod(0o755)
    (data / "bus").chmod(0o775)
    make_private(data)
    assert _mode(data) == 0o700 and _mode(data / "bus") == 0o700
    assert {_mode(p) for p in files} == {0o600}


def test_a_missing_folder_is_not_created(tmp_path):
    make_private(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here").exists()


class Settings(BaseModel):
    data_dir: Path
    database: Path
    seed_file: Path  # only read: its folder is not the service's to change


def test_the_folders_come_from_the_settings_that_name_where_data_is_written(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        database=tmp_path / "db" / "events.sqlite3",
        seed_file=tmp_path / "shipped" / "seed.gpkg",
    )
    assert data_folders(settings) == [tmp_path / "data", tmp_path / "db"]


def test_a_service_process_creates_files_owner_only(tmp_path):
    """SQLite's -wal and -shm included, which exist only while the database is open."""
    script = (
        "import os, sqlite3, stat, sys\n"
        "from services.kit.private_files import restrict_umask\n"
        "restrict_umask()\n"
        "conn = sqlite3.connect(sys.argv[1])\n"
        "conn.execute('PRAGMA journal_mode=WAL')\n"
        "conn.execute('CREATE TABLE t (x)')\n"
        "os.makedirs(sys.argv[2])\n"
        "for name in sorted(os.listdir(sys.argv[3])):\n"
        "    mode = stat.S_IMODE(os.stat(os.path.join(sys.argv[3], name)).st_mode)\n"
        "    print(name, oct(mode))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "x.sqlite3"),
            str(tmp_path / "made"),
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        umask=0o022,
    )
    modes = dict(line.split() for line in done.stdout.splitlines())
    assert modes == {
        "made": "0o700",
        "x.sqlite3": "0o600",
        "x.sqlite3-shm": "0o600",
        "x.sqlite3-wal": "0o600",
    }
