"""Private work directories: where one task keeps a video while it works on it.

A predictable shared path (``/tmp/vidla-work/<id>``) lets another local user read other
videos' files, plant a symlink where a file will be written, or swap a parent directory so
that a cleanup deletes somewhere else. So each task gets a fresh ``mkdtemp`` directory
(random name, mode 0700) directly under a root nobody else can rename things in (the system
temp directory, which is sticky, or a root of the caller's that is checked), and removal
never follows a symbolic link.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

PREFIX = "vidla-work-"


def private_workdir(root: str | Path | None = None) -> Path:
    """A new private directory (0700, unpredictable name) under ``root`` (default: the system temp dir).

    ``root`` is created if missing and must be a real directory (not a symlink) that other
    users cannot rename entries in: owned by this user or root, and not writable by others
    unless sticky (like /tmp). Raises ``PermissionError`` otherwise, naming the problem.
    """
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_root(base)
    return Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))


def remove_workdir(path: str | Path) -> None:
    """Delete a work directory and everything in it, never following a symlink (at the top or inside).

    The parent is opened without following a link, and the directory is emptied through that
    handle (``shutil.rmtree`` with ``dir_fd``), so a parent swapped for a symlink after the
    directory was made cannot redirect the deletion (``PermissionError``). A missing
    directory is fine.
    """
    path = Path(path)
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as error:  # ELOOP: the parent is now a symlink
        raise PermissionError(f"not removing {path}: its parent is a symlink") from error
    try:
        if stat.S_ISLNK(os.lstat(path.name, dir_fd=parent_fd).st_mode):
            os.unlink(path.name, dir_fd=parent_fd)  # a link where our directory was: remove the link only
            return
        shutil.rmtree(path.name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(parent_fd)


def _check_root(base: Path) -> None:
    info = os.lstat(base)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"work root {base} is a symlink or not a directory")
    sticky = bool(info.st_mode & stat.S_ISVTX)
    if info.st_uid not in (os.geteuid(), 0) or (info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky):
        raise PermissionError(f"work root {base} can be changed by other users; use a directory of your own")
