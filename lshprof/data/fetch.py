"""Standard data files, downloaded once into a cache folder and checked by SHA-256.

Where files live
    :func:`data_home` is the cache: the ``root`` argument when given, else the
    environment variable ``LSHPROF_DATA``, else the per-user cache folder
    (``platformdirs.user_cache_dir("lshprof")``, e.g. ``~/.cache/lshprof`` on Linux).
    Each source has its own subfolder, ``<home>/<source name>/`` (``<home>/mnist/``).
    Files you already have may be copied there by hand; the loaders also accept an
    unpacked copy (the name without ``.gz``).

Where files come from
    Every :class:`Source` in :data:`SOURCES` lists its files with their byte size and
    SHA-256, and the mirrors that serve them; a file's address is a mirror's base URL
    followed by the file name. Mirrors are tried in this order: the ``mirror``
    argument (``--mirror`` on the command line), the environment variable
    ``LSHPROF_MIRROR_<NAME>`` (the source name in capitals with ``-`` as ``_``, e.g.
    ``LSHPROF_MIRROR_NORB_SMALL``; several base URLs may be given separated by
    spaces), then the built-in mirrors. A base may be ``http(s)://``, ``file://`` or a
    plain local folder. A file is accepted only when its size and SHA-256 match, so a
    mirror can never substitute other data.

Your own sources
    The environment variable ``LSHPROF_SOURCES_FILE`` may name a JSON file that adds
    sources or replaces built-in ones by name, for data kept on a private mirror::

        {"my-set": {"summary": "what it is",
                    "files": [{"name": "part1.bin", "sha256": "<64 hex digits>",
                               "size": 12345}],
                    "mirrors": ["https://example.org/data/"]}}

    ``summary``, ``size`` and ``mirrors`` may be left out (a file without ``size`` is
    checked by SHA-256 only); ``sha256`` is required. ``lshprof data fetch my-set``
    then downloads and checks those files like the built-in ones. The test suite uses
    the same mechanism to point the real command at a local server.

Downloads go to a temporary file in the destination folder, hashed as they arrive,
and are moved under the final name only after the size and checksum match; the
temporary file is removed on any failure, an interrupt included.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import json
import math
import os
import re
import shlex
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from lshprof.errors import ConfigError, DataError

__all__ = ["RemoteFile", "Source", "SOURCES", "data_home", "sources", "get_source", "folder",
           "mirrors_for", "fetch", "missing", "verify", "require", "local_file", "sha256_of",
           "open_data_file", "read_exact", "read_body", "check_body_size", "announced_shape",
           "shape_text", "GZIP_ERRORS",
           "is_symlink_loop", "size_text"]

#: Bytes read per step while downloading or hashing.
CHUNK = 1 << 20
#: Seconds a connection may stay silent before the mirror counts as failed.
TIMEOUT = 60.0

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its name (also its name on disk and the last part of its
    URL), its SHA-256 in lower-case hex, and its size in bytes (None: not checked)."""

    name: str
    sha256: str
    size: int | None


@dataclass(frozen=True)
class Source:
    """A set of files fetched together into ``<home>/<name>/``, and the base URLs of the
    mirrors that serve them, in the order they are tried."""

    name: str
    summary: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...] = ()

    def file(self, name: str) -> RemoteFile:
        """The file called ``name``."""
        for f in self.files:
            if f.name == name:
                return f
        raise ConfigError(f"{self.name}: no file {name!r}; files: "
                          f"{', '.join(f.name for f in self.files)}")


# Sizes and SHA-256 sums as recorded by TensorFlow Datasets
# (tensorflow/datasets: tensorflow_datasets/url_checksums/mnist.txt and smallnorb.txt).
_MNIST = Source(
    "mnist", "MNIST handwritten digits: 60,000 training and 10,000 test images, IDX format",
    (RemoteFile("train-images-idx3-ubyte.gz",
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
     RemoteFile("train-labels-idx1-ubyte.gz",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
     RemoteFile("t10k-images-idx3-ubyte.gz",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
     RemoteFile("t10k-labels-idx1-ubyte.gz",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542)),
    ("https://ossci-datasets.s3.amazonaws.com/mnist/",
     "https://storage.googleapis.com/cvdf-datasets/mnist/"))

_NORB_TRAIN = "smallnorb-5x46789x9x18x6x2x96x96-training"
_NORB_TEST = "smallnorb-5x01235x9x18x6x2x96x96-testing"
_NORB_SMALL = Source(
    "norb-small", "small NORB: 24,300 training and 24,300 test stereo pairs of 96x96 toy "
                  "images, 5 categories",
    (RemoteFile(f"{_NORB_TRAIN}-dat.mat.gz",
                "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873", 131896188),
     RemoteFile(f"{_NORB_TRAIN}-cat.mat.gz",
                "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa", 348),
     RemoteFile(f"{_NORB_TRAIN}-info.mat.gz",
                "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32", 71052),
     RemoteFile(f"{_NORB_TEST}-dat.mat.gz",
                "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474", 130799817),
     RemoteFile(f"{_NORB_TEST}-cat.mat.gz",
                "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff", 347),
     RemoteFile(f"{_NORB_TEST}-info.mat.gz",
                "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2", 10428)),
    ("https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",))

#: The built-in sources by name. ``LSHPROF_SOURCES_FILE`` adds to these (see :func:`sources`).
SOURCES: dict[str, Source] = {s.name: s for s in (_MNIST, _NORB_SMALL)}


# --------------------------------------------------------------------------- the table


def _user_sources(path: str) -> dict[str, Source]:
    """The sources in the JSON file ``path`` (the format is in the module docstring)."""
    where = f"LSHPROF_SOURCES_FILE={path}"
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object of sources by name")
    out = {}
    for name, entry in raw.items():
        at = f"{where}: source {name!r}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ConfigError(f"{at}: a name may hold letters, digits, '.', '_' and '-'")
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: expected an object with 'files' and 'mirrors'")
        unknown = sorted(set(entry) - {"summary", "files", "mirrors"})
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r}; valid: summary, files, mirrors")
        files = entry.get("files")
        if not isinstance(files, list) or not files:
            raise ConfigError(f"{at}: 'files' must be a non-empty list")
        remote = []
        for i, f in enumerate(files):
            fat = f"{at}: files[{i}]"
            if not isinstance(f, dict):
                raise ConfigError(f"{fat}: expected an object with name, sha256 and size")
            fname, digest, size = f.get("name"), f.get("sha256"), f.get("size")
            if (not isinstance(fname, str) or not fname or fname in (".", "..")
                    or "/" in fname or "\\" in fname):
                raise ConfigError(f"{fat}: 'name' must be a plain file name, got {fname!r}")
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
                raise ConfigError(f"{fat}: 'sha256' must be 64 hex digits, got {digest!r}")
            if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                                     or size < 0):
                raise ConfigError(f"{fat}: 'size' must be a byte count, got {size!r}")
            remote.append(RemoteFile(fname, digest.lower(), size))
        mirrors = entry.get("mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
            raise ConfigError(f"{at}: 'mirrors' must be a list of base URLs")
        summary = entry.get("summary", f"files from {where}")
        out[name] = Source(name, str(summary), tuple(remote), tuple(mirrors))
    return out


def sources() -> dict[str, Source]:
    """The built-in :data:`SOURCES` with those of ``$LSHPROF_SOURCES_FILE`` added (a
    source there replaces a built-in one of the same name)."""
    out = dict(SOURCES)
    path = os.environ.get("LSHPROF_SOURCES_FILE")
    if path:
        out.update(_user_sources(path))
    return out


def get_source(name: str | Source) -> Source:
    """The source called ``name``; a data set name whose files come from a source
    (``mnist8m`` -> ``mnist``) is accepted too. A :class:`Source` is returned as is."""
    if isinstance(name, Source):
        return name
    table = sources()
    if name in table:
        return table[name]
    from lshprof.data import DATASETS

    ds = DATASETS.get(name)
    if ds is not None and ds.fetch in table:
        return table[ds.fetch]
    if ds is not None:
        raise ConfigError(f"data set {name!r} is {ds.origin} and has no files to fetch; "
                          f"fetchable: {', '.join(table)}")
    raise ConfigError(f"unknown data source {name!r}; valid: {', '.join(table)}")


def data_home(root: str | os.PathLike | None = None) -> Path:
    """The folder holding every source's subfolder: ``root``, else ``$LSHPROF_DATA``,
    else the per-user cache folder."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("LSHPROF_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("lshprof"))


def folder(name: str | Source, root: str | os.PathLike | None = None) -> Path:
    """The folder that holds source ``name``'s files."""
    return data_home(root) / get_source(name).name


def _env_name(name: str) -> str:
    return "LSHPROF_MIRROR_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def _base_url(base: str) -> str:
    """A mirror as a URL ending in ``/``: URLs are kept, a local folder becomes ``file://``."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", base):
        url = base
    else:
        url = Path(base).expanduser().resolve().as_uri()
    return url if url.endswith("/") else url + "/"


def mirrors_for(name: str | Source, mirror: str | Iterable[str] | None = None) -> list[str]:
    """The base URLs tried for source ``name``, in order: ``mirror``, then
    ``$LSHPROF_MIRROR_<NAME>``, then the built-in ones (duplicates dropped)."""
    src = get_source(name)
    given = [mirror] if isinstance(mirror, str) else list(mirror or ())
    env = os.environ.get(_env_name(src.name), "").split()
    out: list[str] = []
    for base in (*given, *env, *src.mirrors):
        if not base:
            continue
        url = _base_url(base)
        if url not in out:
            out.append(url)
    return out


# --------------------------------------------------------------------------- checking


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in lower-case hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _size_ok(path: Path, rf: RemoteFile) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_file() and (rf.size is None or st.st_size == rf.size)


def _status(path: Path, rf: RemoteFile) -> str:
    if not path.is_file():
        return "missing"
    if not _size_ok(path, rf):
        return "bad checksum"
    try:
        return "ok" if sha256_of(path) == rf.sha256 else "bad checksum"
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def missing(name: str | Source, root: str | os.PathLike | None = None) -> list[Path]:
    """The files of source ``name`` that are absent or of the wrong size (nothing is
    hashed, so this is quick)."""
    src = get_source(name)
    where = folder(src, root)
    return [where / f.name for f in src.files if not _size_ok(where / f.name, f)]


def verify(name: str | Source, root: str | os.PathLike | None = None) -> dict[str, str]:
    """Each file of source ``name`` with ``"ok"``, ``"missing"`` or ``"bad checksum"``
    (every present file is hashed)."""
    src = get_source(name)
    where = folder(src, root)
    return {f.name: _status(where / f.name, f) for f in src.files}


def local_file(where: str | os.PathLike, name: str) -> Path:
    """The file ``name`` in folder ``where`` as the readers open it: ``name`` itself, or
    when only an unpacked copy is there (``name`` without ``.gz``), that copy."""
    path = Path(where) / name
    if not path.is_file() and name.endswith(".gz"):
        unpacked = path.with_name(name[:-3])
        if unpacked.is_file():
            return unpacked
    return path


def require(name: str | Source, root: str | os.PathLike | None = None, *,
            only: Iterable[str] | None = None) -> Path:
    """Raise :class:`DataError` naming the fetch command when a file of source ``name``
    (or only those named in ``only``) is absent; return the folder.

    Only presence counts here (an unpacked copy, without ``.gz``, counts too): the
    readers check the contents, and :func:`verify` compares with the published files.
    """
    src = get_source(name)
    where = folder(src, root)
    wanted = [src.file(n) for n in only] if only is not None else list(src.files)
    absent = [f.name for f in wanted if not local_file(where, f.name).is_file()]
    if not absent:
        return where
    for path in (where, *(where / name for name in absent)):
        if is_symlink_loop(path):
            raise DataError(f"{src.name}: {path} is a symlink loop (the symbolic links on the "
                            "way to it point at each other), not a missing file; make it "
                            "point at the real one")
    more = f" and {len(absent) - 1} more file{'s' if len(absent) > 2 else ''}" if len(absent) > 1 else ""
    command = f"lshprof data fetch {src.name}"
    if root is not None and str(root) != "":
        command += f" --root {shlex.quote(str(root))}"
    it = "them" if more else "it"
    raise DataError(f"{src.name}: {absent[0]}{more} not found in {where}; fetch {it} with: "
                    f"{command}")


# --------------------------------------------------------------------------- downloading


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why."""


def _user_agent() -> str:
    from lshprof import __version__

    return f"lshprof/{__version__} (data fetch; +https://pypi.org/project/lshprof/)"


def _why(exc: BaseException) -> str:
    """A short reason for a failed request."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 404:
            return "not found (HTTP 404)"
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, FileNotFoundError):
            return "not found"
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(reason, OSError) and reason.strerror:
            return f"cannot connect: {reason.strerror}"
        return f"cannot connect: {reason}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return f"download broke off after {len(exc.partial):,} bytes"
    if isinstance(exc, http.client.HTTPException):
        return f"bad response: {type(exc).__name__} {exc}".rstrip()
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _download(url: str, rf: RemoteFile, dest: Path, *, timeout: float,
              progress: Callable[[str, int, int | None], None] | None) -> None:
    """Download ``url`` to ``dest`` through a temporary file beside it; raise
    :class:`_MirrorFailed` when the mirror fails or serves other bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{rf.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise DataError(f"{dest.parent}: cannot write: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    done = False
    try:
        h = hashlib.sha256()
        n = 0
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if rf.size is not None and total is not None and total != rf.size:
                    raise _MirrorFailed(f"size mismatch: the mirror offers {total:,} bytes, "
                                        f"expected {rf.size:,} (the mirror serves a different file)")
                total = rf.size if rf.size is not None else total
                if progress is not None:
                    progress(rf.name, 0, total)
                while chunk := resp.read(CHUNK):
                    n += len(chunk)
                    if rf.size is not None and n > rf.size:
                        raise _MirrorFailed(f"size mismatch: more than the expected {rf.size:,} "
                                            "bytes (the mirror serves a different file)")
                    h.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(rf.name, n, total)
        except _MirrorFailed:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _MirrorFailed(_why(exc)) from None
        got = h.hexdigest()
        if got != rf.sha256:
            sizes = (f": {n:,} bytes, expected {rf.size:,}"
                     if rf.size is not None and n != rf.size else "")
            raise _MirrorFailed(f"checksum mismatch: expected {rf.sha256}, got {got} "
                                f"(the mirror serves a different file{sizes})")
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            raise DataError(f"{dest}: cannot save the download: {exc.strerror or exc}") from None
        done = True
    finally:
        if not done:
            try:
                tmp.unlink()
            except OSError:
                pass


def fetch(name: str | Source, *, root: str | os.PathLike | None = None,
          mirror: str | Iterable[str] | None = None, force: bool = False,
          progress: Callable[[str, int, int | None], None] | None = None,
          report: Callable[[str, str], None] | None = None,
          timeout: float = TIMEOUT) -> list[Path]:
    """Make every file of source ``name`` present and verified; return their paths.

    A file already present with the right SHA-256 is kept (unless ``force``); any other
    is downloaded from the first mirror that delivers the right bytes (see
    :func:`mirrors_for` for the order). ``progress(file, done_bytes, total_bytes)`` is
    called as bytes arrive (total None when unknown); ``report(file, message)`` is called
    once per file with what happened, and for each mirror that failed. Raises one
    :class:`DataError` naming the file and each mirror's failure when none delivers.
    """
    src = get_source(name)
    where = folder(src, root)
    bases = mirrors_for(src, mirror)
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{src.name}: cannot create {where}: {exc.strerror or exc}") from None
    paths = []
    for rf in src.files:
        dest = where / rf.name
        paths.append(dest)
        state = _status(dest, rf)
        if state == "ok" and not force:
            if report is not None:
                report(rf.name, "already present (checksum ok)")
            continue
        if not bases:
            raise DataError(f"{src.name}: no mirror for {rf.name}; give one with --mirror URL "
                            f"or {_env_name(src.name)}")
        failures = []
        for base in bases:
            url = base + urllib.parse.quote(rf.name)
            try:
                _download(url, rf, dest, timeout=timeout, progress=progress)
            except _MirrorFailed as exc:
                failures.append(f"{url}: {exc}")
                if report is not None:
                    report(rf.name, f"failed from {url}: {exc}")
                continue
            if report is not None:
                verb = "replaced" if state == "bad checksum" else "downloaded"
                report(rf.name, f"{verb} from {url} (checksum ok)")
            break
        else:
            raise DataError(f"{src.name}: cannot fetch {rf.name}: " + "; ".join(failures))
    return paths


# --------------------------------------------------------------------------- reading


def is_symlink_loop(path: str | os.PathLike) -> bool:
    """True when ``path`` cannot be followed because symbolic links on the way to it form a
    loop (so it is neither found nor missing: ``Path.exists`` says False for it)."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    except ValueError:  # a NUL byte in the name
        return False
    return False


def size_text(n: float) -> str:
    """Bytes in decimal units, for messages: ``47 MB``, ``1.7 TB``, ``512 bytes``."""
    if n < 1000:
        return f"{int(n)} bytes"
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        n /= 1000
        if round(n) < 1000 or unit == "EB":
            return f"{n:.1f} {unit}" if round(n, 1) < 10 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def open_data_file(path: str | os.PathLike) -> BinaryIO:
    """Open a data file for reading, decompressing it when it is gzip (recognised by its
    first two bytes, not its name). Raises :class:`DataError` when it cannot be opened."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{path}: a symlink loop (the symbolic links on the way to it "
                            "point at each other); make it point at the real file") from None
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if fh.read(2) == b"\x1f\x8b":
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    fh.seek(0)
    return fh


#: What reading a damaged gzip file may raise.
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def read_exact(fh: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``fh`` in steps; return the bytes read (less at end of file)."""
    pos = 0
    size = len(buffer)
    while pos < size:
        chunk = fh.read(min(16 * CHUNK, size - pos))
        if not chunk:
            break
        buffer[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
    return pos


def shape_text(shape: tuple[int, ...]) -> str:
    """``(60000, 28, 28)`` -> ``60000x28x28``, for messages."""
    return "x".join(str(d) for d in shape) or "scalar"


#: Deflate expands a byte to at most about 1,032 (its longest match per shortest code).
_DEFLATE_RATIO = 1032


def _room(fh) -> tuple[int | None, bool]:
    """The most bytes ``fh`` can still deliver, from the file's size, and whether that is
    exact (a plain file) or a bound (gzip: its compressed size times deflate's largest
    expansion). ``(None, False)`` when the size is not known (not a file)."""
    raw = getattr(fh, "fileobj", None) if isinstance(fh, gzip.GzipFile) else fh
    try:
        size = os.fstat(raw.fileno()).st_size
        pos = raw.tell()
    except (AttributeError, OSError, ValueError):
        return None, False
    if raw is fh:
        return max(0, size - pos), True
    return size * _DEFLATE_RATIO, False


def check_body_size(fh: BinaryIO, path, shape: tuple[int, ...], dtype, kind: str) -> int:
    """The number of elements a header's ``shape`` announces, after checking, from the
    file's size alone, that the rest of ``fh`` can hold them (so a corrupt header never
    makes a reader allocate terabytes). Raises :class:`DataError` naming ``path``."""
    if any(d < 0 for d in shape):
        raise DataError(f"{path}: corrupt {kind} header: negative dimension in "
                        f"{shape_text(shape)}")
    count = math.prod(shape)  # Python integers: no overflow
    expected = count * dtype.itemsize
    room, exact = _room(fh)
    if room is not None and expected > room:
        says = f"header says {shape_text(shape)} ({expected} bytes = {size_text(expected)})"
        fix = f"the file is truncated or not {kind}; delete it and fetch it again"
        if exact:
            raise DataError(f"{path}: truncated: {says}, file has {room} "
                            f"({size_text(room)}): {fix}")
        raise DataError(f"{path}: truncated: {says}, more than its gzip data can unpack "
                        f"to (at most {size_text(room)}): {fix}")
    return count


def announced_shape(path: str | os.PathLike, read_header, kind: str):
    """``(shape, dtype)`` that the header of data file ``path`` announces, read by
    ``read_header(fh, path)`` and checked against the file's size
    (:func:`check_body_size`); its body is not read. ``kind`` names the format."""
    with open_data_file(path) as fh:
        try:
            shape, dtype = read_header(fh, path)
            check_body_size(fh, path, shape, dtype, kind)
        except GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt gzip data: {exc}") from None
    return shape, dtype


def read_body(fh: BinaryIO, path, shape: tuple[int, ...], dtype, kind: str):
    """The array of ``shape`` and ``dtype`` that follows a file header in ``fh``, in native
    byte order. Raises :class:`DataError` naming ``path`` for a negative dimension, a
    truncated body, or bytes beyond the body. ``kind`` names the format (``IDX``)."""
    import numpy as np

    count = check_body_size(fh, path, shape, dtype, kind)
    expected = count * dtype.itemsize
    try:
        data = np.empty(count, dtype=dtype)
    except (MemoryError, ValueError):
        raise DataError(f"{path}: its {kind} header claims {shape_text(shape)} values "
                        f"({size_text(expected)}), more than this machine can hold in "
                        "memory; is it the right file?") from None
    got = read_exact(fh, memoryview(data.view(np.uint8)))
    if got < expected:
        raise DataError(f"{path}: truncated: header says {shape_text(shape)} "
                        f"({expected} bytes), file has {got}")
    if fh.read(1):
        raise DataError(f"{path}: longer than its header says ({shape_text(shape)}, "
                        f"{expected} bytes of data)")
    data = data.reshape(shape)
    return data if dtype.itemsize == 1 else data.astype(dtype.newbyteorder("="))
