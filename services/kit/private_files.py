"""Data folders 0700, data files 0600: only the service's own user reads its stores.

The stores hold sealed personal data, password and key hashes, the token-signing
keys (sealed) and the bus log; a world-readable file would hand them to any local
account. A service therefore sets the umask 077 before it creates anything, so new
files (SQLite's -wal and -shm included) are born owner-only, and at start it
tightens the folders it was given, which fixes files made by an older version.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

FOLDER_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077

log = logging.getLogger("grassroots.kit.private_files")


def restrict_umask() -> None:
    """From now on this process creates files 0600 and folders 0700."""
    os.umask(UMASK)


def _tighten(path: Path, mode: int) -> None:
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if current & ~mode:
            path.chmod(current & mode)
    except OSError as exc:
        log.warning("cannot make %s owner-only: %s", path, exc.strerror)


def make_private(folder: Path) -> None:
    """Take group and other access away from `folder` and everything beneath it (a
    missing folder is left to be created under the umask). Symbolic links are left
    alone."""
    if not folder.is_dir():
        return
    _tighten(folder, FOLDER_MODE)
    for root, folders, files in os.walk(folder):
        for name in folders:
            _tighten(Path(root, name), FOLDER_MODE)
        for name in files:
            path = Path(root, name)
            if not path.is_symlink():
                _tighten(path, FILE_MODE)


# Settings that name where a service writes: a folder, or a file whose folder it owns.
# (A seed file is only read, and may sit in a folder that is not the service's.)
DATA_FOLDER_SETTINGS = ("data_dir",)
DATA_FILE_SETTINGS = ("database", "store_file")


def data_folders(settings: BaseModel) -> list[Path]:
    """The folders a service keeps data in, from its settings."""
    folders: list[Path] = []
    for name, value in settings:
        if not isinstance(value, Path):
            continue
        if name in DATA_FOLDER_SETTINGS:
            folder = value
        elif name in DATA_FILE_SETTINGS:
            folder = value.parent
        else:
            continue
        if folder not in folders:
            folders.append(folder)
    return folders


def make_all_private(folders: Iterable[Path]) -> None:
    for folder in folders:
        make_private(folder)
