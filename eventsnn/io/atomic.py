"""Write a file through a temporary sibling and rename it into place, safely.

Every file eventsnn writes (networks, results, CSV, PNG, traces) goes through
:func:`atomic_path`, so a failed or interrupted write never leaves a partial
file behind nor replaces a good one. Because users script eventsnn in
pipelines, often as root, the target is checked first (:func:`check_output_path`,
which the CLI also calls *before* a long simulation starts):

- a missing path or a regular file is written atomically (temporary file in
  the same directory, then ``os.replace``);
- a directory or a socket is always refused;
- a symbolic link, FIFO or device is refused unless ``force`` is given: with
  ``force`` a link is followed (the file it points to is written, the link is
  kept) and a FIFO or device is *written into* (never replaced), so
  ``--output /dev/null --force`` behaves like a shell redirect.

Temporary files are named ``.tmp-eventsnn-<hash of the target name>-<pid>-*``;
Python removes them on any exception, and one left by a killed process
(SIGKILL, power loss) is removed by the next write to the same target once its
process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile

from ..errors import OutputError

_TMP = ".tmp-eventsnn-"
_KINDS = {stat.S_IFIFO: "FIFO (named pipe)", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFSOCK: "socket", stat.S_IFDIR: "directory"}


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _tmp_prefix(path: str) -> str:
    """The temporary-file prefix of one target: same target, same prefix; others never match."""
    name = os.path.basename(path).encode("utf-8", "surrogateescape")
    return f"{_TMP}{hashlib.sha256(name).hexdigest()[:12]}-"


def check_output_path(path, force: bool = False) -> str:
    """Check that ``path`` may be and can be written; return the path to write.

    Raises :class:`OutputError` naming ``path`` for an empty name, a name the
    file system refuses (too long, a component that is not a directory), a
    missing or unwritable directory, a directory target, or (without
    ``force``) a symlink, FIFO or device. The returned path is ``path`` itself,
    or, for a symlink with ``force``, the file it points to. Nothing is left
    behind: the writability probe removes its own file.
    """
    if path is None or not os.fspath(path).strip():
        raise OutputError("the output path is empty")
    path = os.fspath(path)
    if "\0" in path:
        raise OutputError(f"{path!r}: an output path cannot contain a NUL character")
    if path.endswith(os.sep) or os.path.basename(path) in ("", ".", ".."):
        raise OutputError(f"{path}: names a directory, not a file")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # ENAMETOOLONG, ENOTDIR, EACCES, ELOOP
        raise OutputError(f"{path}: cannot write here: {_why(exc)}") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(path)
        if not force:
            raise OutputError(f"{path}: is a symbolic link (to {target}); eventsnn does not replace links "
                              f"(remove it, or give --force to write the file it points to)")
        if os.path.islink(target):  # realpath gives up on a loop and returns a link
            raise OutputError(f"{path}: is a symbolic link that loops (or is nested too deeply)")
        return check_output_path(target, force)
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "special file")
        if stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            raise OutputError(f"{path}: is a {kind}, not a file")
        if not force:
            raise OutputError(f"{path}: is a {kind}, not a regular file; eventsnn replaces only regular "
                              f"files (give --force to write into it)")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{path}: the {kind} is not writable")
        return path
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputError(f"{path}: the output directory {directory} does not exist")
    try:  # the only reliable writability test (root, ACLs, read-only mounts): create a file
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix(path) + f"{os.getpid()}-", dir=directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create files in {directory}: {_why(exc)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return path


def clean_stale(path) -> list:
    """Remove this target's temporary files left by processes that no longer run; return them."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _tmp_prefix(path)
    removed = []
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        full = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():
                os.unlink(full)
                removed.append(full)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours, maybe in use by another write of this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


@contextlib.contextmanager
def atomic_path(path, force: bool = False):
    """Yield a temporary path; on success move (or, for a forced FIFO/device, copy) it to ``path``.

    The target is checked with :func:`check_output_path` first. On any
    exception the temporary file is removed, so a failed write never leaves a
    partial file behind (nor replaces a good one); an ``OSError`` while
    writing or in the final move or copy is raised as :class:`OutputError`
    naming ``path`` (never the temporary file).
    """
    target = check_output_path(path, force)
    path = os.fspath(path)
    special = os.path.exists(target) and not os.path.isfile(target)
    if special:  # stream into the FIFO/device from a private temporary file
        fd, tmp = tempfile.mkstemp(prefix=_TMP)
    else:
        clean_stale(target)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target) + f"{os.getpid()}-",
                                   dir=os.path.dirname(os.path.abspath(target)))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file a normal file's mode
    os.close(fd)
    try:
        try:
            yield tmp
        except OSError as exc:  # disk full, quota, I/O error: name the user's path, not ours
            raise OutputError(f"{path}: cannot write: {_why(exc)}") from None
        try:
            if special:
                _copy_into(tmp, target)
            else:
                os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write: {_why(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _copy_into(tmp: str, target: str) -> None:
    """Write the finished file into a FIFO or device without replacing it (no O_CREAT, no O_TRUNC)."""
    flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0)
    if stat.S_ISFIFO(os.stat(target).st_mode):
        flags |= os.O_NONBLOCK  # a FIFO nobody reads: fail (ENXIO) instead of blocking forever
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(exc.errno, "no process is reading the FIFO") from None
        raise
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as out, open(tmp, "rb") as src:
        shutil.copyfileobj(src, out)
