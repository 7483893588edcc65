"""Open HDF5 files from strangers (networks, results, Keras and NIR models) safely.

HDF5 can make one file read others: a dataset with *external storage* reads
its bytes from any local file (or blocks forever on a FIFO), an *external
link* opens another HDF5 file, a *virtual dataset* maps other files' data in.
A network file from a paper's supplement must not be able to read
``/etc/shadow`` as weights. :func:`open_h5` therefore

1. refuses anything but a regular file (a FIFO would block the open);
2. walks every link and object of the file *without resolving* external
   links or reading any data, and refuses external links, user-defined links,
   external storage and virtual datasets with a message naming the object;
3. adds up the declared size of every dataset and refuses the file if reading
   it could need more memory than the limit (:mod:`eventsnn.limits`): a small
   chunked or compressed file can declare terabytes;
4. checks the global heap collections (where variable-length strings live)
   before HDF5 reads them: one flipped size byte there sends HDF5 2.0 into an
   endless loop inside C code, which no Python timeout can interrupt;
5. reads the whole file once in a forked child process first (POSIX): the
   HDF5 C library can crash (segfault) or loop forever on a corrupted file,
   and neither can be caught in-process; a child that dies or runs past its
   time limit makes the file refused with a clear message instead;
6. turns every h5py error (``OSError``, ``RuntimeError``, ``KeyError``, ...)
   into the caller's own error class, naming the file and the object.

Only then is the open file handed to the loader, which reads its fields.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import stat
import struct
import time

import h5py

from .. import limits
from ..errors import EventsnnError, ResourceError

# What h5py raises on damaged files: OSError/RuntimeError from the HDF5 library,
# KeyError/ValueError/TypeError from its Python layer, SystemError rarely.
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, SystemError, IndexError,
             AttributeError, OverflowError, UnicodeDecodeError)


def require_regular(path: str, error, what: str) -> None:
    """Refuse a missing path, a directory, a FIFO or a device before anything opens it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is not a regular file (a FIFO, device or socket); refusing to read it as a {what}")


def check_global_heaps(path: str, error, what: str) -> None:
    """Refuse a file whose global heap collections do not chain up (see the module doc).

    A collection is ``GCOL``, version 1, three zero bytes, its size (8 bytes,
    at least 4096), then objects of a 16-byte header (index, refcount,
    reserved, size) and data padded to 8 bytes; object 0 is the free space and
    runs exactly to the collection's end. Only candidates whose header has
    that form are checked, so weight bytes that happen to spell ``GCOL`` are
    not mistaken for a collection.
    """
    size = os.path.getsize(path)
    if size < 16:
        return
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as raw:
        start = raw.find(b"GCOL")
        while start >= 0:
            if raw[start + 4:start + 8] == b"\x01\0\0\0" and start + 16 <= size:
                (length,) = struct.unpack_from("<Q", raw, start + 8)
                if 4096 <= length <= size - start and not _heap_chains(raw, start, start + length):
                    raise error(f"{path}: damaged HDF5 {what} (the global heap at byte {start} is "
                                f"inconsistent: truncated or corrupted)")
            start = raw.find(b"GCOL", start + 4)


def _heap_chains(raw, start: int, end: int) -> bool:
    p, seen = start + 16, set()
    while p + 16 <= end:
        index, _, _, size = struct.unpack_from("<HHIQ", raw, p)
        if index == 0:
            return p + size == end
        if index in seen:
            return False
        seen.add(index)
        p += 16 + (size + 7) // 8 * 8
    return start + 16 <= p <= end


def check_tree(f: h5py.File, path: str, error, what: str, max_bytes: int | None = None) -> int:
    """Walk ``f`` without leaving it; refuse foreign storage and oversize data; return the declared bytes."""
    seen = set()
    total, largest = 0, ("", 0)
    stack = [("/", f)]
    while stack:
        gname, group = stack.pop()
        for name in group:
            full = f"{gname.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise error(f"{path}: '{full}' is an external link to {link.filename}:{link.path}; "
                            f"a {what} must not refer to other files")
            if isinstance(link, h5py.SoftLink):
                continue  # a path inside this file; its target is checked where it lives
            if not isinstance(link, h5py.HardLink):
                raise error(f"{path}: '{full}' is a user-defined link; not allowed in a {what}")
            obj = group[name]
            key = hash(obj.id)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(obj, h5py.Group):
                stack.append((full, obj))
            elif isinstance(obj, h5py.Dataset):
                plist = obj.id.get_create_plist()
                if plist.get_layout() == h5py.h5d.VIRTUAL:
                    raise error(f"{path}: dataset '{full}' is a virtual dataset (its data lives in other "
                                f"files); not allowed in a {what}")
                if plist.get_external_count() > 0:
                    name0 = plist.get_external(0)[0].decode("utf-8", "replace")
                    raise error(f"{path}: dataset '{full}' keeps its data in another file ({name0!r}, "
                                f"HDF5 external storage); not allowed in a {what}")
                nbytes = int(obj.id.get_space().get_select_npoints()) * max(int(obj.dtype.itemsize), 1)
                total += nbytes
                if nbytes > largest[1]:
                    largest = (full, nbytes)
    limit = limits.max_memory() if max_bytes is None else max_bytes
    if total > limit:
        raise ResourceError(f"{path}: its datasets declare {limits.human(total)} of data (largest: "
                            f"'{largest[0]}', {limits.human(largest[1])}), above the memory limit of "
                            f"{limits.human(limit)}; raise it with --max-memory if the file is genuine")
    return total


def _walk(f: h5py.File):
    """Every object reachable by hard links, once (no link is resolved outside the file)."""
    seen, stack = set(), [f]
    while stack:
        group = stack.pop()
        yield group
        for name in group:
            if not isinstance(group.get(name, getlink=True), h5py.HardLink):
                continue
            obj = group[name]
            key = hash(obj.id)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            else:
                yield obj


# Names the loaders look up directly (by name, not by iterating): the probe looks
# them up too, because HDF5 finds a name through other structures (name indexes,
# dense attribute storage) than an iteration does, and either can crash.
_KNOWN_ATTRS = ("format", "version", "input_shape", "encoding", "decoding", "provenance", "count", "name",
                "kind", "inputs", "delay", "stride", "padding", "kernel", "reset", "leak", "v_init",
                "max_spikes", "settings", "layers", "timesteps", "model_config", "keras_version", "backend",
                "weight_names", "layer_names", "type")
_KNOWN_MEMBERS = ("layers", "neuron", "weight", "bias", "threshold", "model_weights", "node", "nodes",
                  "edges", "version", "labels", "checkpoints", "checkpoint_predictions", "neurons", "outputs")

_STRUCTURE_BROKEN = 3  # the child's exit status: the file's structure cannot be read (message on the pipe)


def _read_everything(path: str, error, what: str, max_bytes) -> str | None:
    """The child's work: check the tree, then read every attribute and dataset.

    Returns a message if the file's *structure* cannot be read (an object's
    attributes or members cannot even be listed): the parent refuses such a
    file, because its loader would take other paths through the same damage.
    A single unreadable value is left to the loader, which names its field.
    """
    with h5py.File(path, "r") as f:
        try:
            check_tree(f, path, error, what, max_bytes)
        except EventsnnError:
            return None  # the parent's own check reports it
        objects = _walk(f)
        while True:
            try:
                obj = next(objects)
            except StopIteration:
                return None
            except H5_ERRORS as exc:
                return f"its members cannot be listed ({_short(exc)})"
            try:
                names = list(obj.attrs)
            except H5_ERRORS as exc:
                return f"the attributes of '{obj.name}' cannot be listed ({_short(exc)})"
            for key in dict.fromkeys([*names, *_KNOWN_ATTRS]):
                with contextlib.suppress(*H5_ERRORS):
                    if key in obj.attrs:
                        obj.attrs[key]
            if isinstance(obj, h5py.Group):
                for key in _KNOWN_MEMBERS:
                    with contextlib.suppress(*H5_ERRORS):
                        key in obj  # noqa: B015 - the lookup itself is the test
            elif isinstance(obj, h5py.Dataset):
                with contextlib.suppress(*H5_ERRORS):
                    if obj.shape is not None:
                        obj[()]


def probe(path: str, error, what: str, max_bytes=None) -> None:
    """Read the file in a forked child; refuse it if the child crashes or hangs (see the module doc).

    Python-level errors of single values are left to the parent, which reads
    the file again and reports them with their field; a file whose structure
    the child cannot even list is refused here. Set ``EVENTSNN_H5_PROBE=0`` to
    skip the probe (for trusted files, or where fork is unsafe).
    """
    if not hasattr(os, "fork") or os.environ.get("EVENTSNN_H5_PROBE") == "0":
        return
    limit = 10.0 + os.path.getsize(path) / 20e6  # generous: 20 MB/s is a slow disk
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 0
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            broken = _read_everything(path, error, what, max_bytes)
            if broken:
                os.write(write_end, broken.encode("utf-8", "replace")[:4000])
                status = _STRUCTURE_BROKEN
        except BaseException:
            pass
        os._exit(status)
    os.close(write_end)
    try:
        deadline = time.monotonic() + limit
        delay = 0.0005
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise error(f"{path}: damaged HDF5 {what}: the HDF5 library did not finish reading it in "
                            f"{limit:.0f} s (a corrupted structure that loops)")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            raise error(f"{path}: damaged HDF5 {what}: the HDF5 library crashed reading it ({name}); "
                        f"the file is corrupted or crafted")
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _STRUCTURE_BROKEN:
            message = os.read(read_end, 4096).decode("utf-8", "replace")
            raise error(f"{path}: damaged HDF5 {what}: {message}")
    finally:
        os.close(read_end)


@contextlib.contextmanager
def open_h5(path, error=EventsnnError, what: str = "HDF5 file", max_bytes: int | None = None):
    """Yield the checked, read-only :class:`h5py.File` at ``path``; see the module doc.

    h5py errors raised while the body reads the file become ``error`` naming
    the file; the body's own :class:`EventsnnError` passes through unchanged.
    """
    path = os.fspath(path)
    require_regular(path, error, what)
    try:
        check_global_heaps(path, error, what)
    except (OSError, ValueError) as exc:  # unreadable, or empty (mmap of 0 bytes)
        if isinstance(exc, EventsnnError):
            raise
        raise error(f"{path}: cannot read the {what}: {_short(exc)}") from None
    probe(path, error, what, max_bytes)
    try:
        f = h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise error(f"{path}: not a readable {what} (not a readable HDF5 file: truncated, damaged or "
                    f"another format): {_short(exc)}") from None
    with f:
        try:
            check_tree(f, path, error, what, max_bytes)
        except EventsnnError:
            raise
        except H5_ERRORS as exc:
            raise error(f"{path}: damaged HDF5 {what} (its structure cannot be read: {_short(exc)})") from None
        try:
            yield f
        except EventsnnError:
            raise
        except H5_ERRORS as exc:
            raise error(f"{path}: damaged HDF5 {what}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
