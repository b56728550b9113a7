"""Fetching data files: checksums, mirrors, the cache folder, and the ``lshprof data`` command.

Everything is served by a local HTTP server on 127.0.0.1 from small files the tests
write; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from lshprof.data import fetch as _fetch
from lshprof.data.fetch import RemoteFile, Source
from lshprof.errors import ConfigError, DataError

MNIST_NAMES = [f.name for f in _fetch.SOURCES["mnist"].files]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server serving ``tmp_path / "srv"``; yields (base URL, folder)."""
    folder = tmp_path / "srv"
    folder.mkdir()
    handler = type("Handler", (_QuietHandler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No user setting leaks in; the cache is a fresh folder."""
    for key in list(os.environ):
        if key.startswith("LSHPROF_MIRROR_") or key in ("LSHPROF_SOURCES_FILE",):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LSHPROF_DATA", str(tmp_path / "home"))


def _write(folder: Path, name: str, data: bytes) -> RemoteFile:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return RemoteFile(name, hashlib.sha256(data).hexdigest(), len(data))


def _contents(n: int = 2) -> dict[str, bytes]:
    return {f"part{i}.bin": bytes((i * 7 + j) % 251 for j in range(3000 + i)) for i in range(n)}


@pytest.fixture
def fake(server, monkeypatch):
    """A source ``fake`` of two files served at ``<server>/good/``."""
    base, folder, handler = server
    files = tuple(_write(folder / "good", name, data) for name, data in _contents().items())
    src = Source("fake", "two small test files", files, (f"{base}/good/",))
    monkeypatch.setitem(_fetch.SOURCES, "fake", src)
    return src, base, folder, handler


def _leftovers(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir()) if where.exists() else []


# --------------------------------------------------------------------------- library


def test_good_checksum_lands_then_skips(fake, tmp_path):
    src, base, folder, handler = fake
    messages = []
    paths = _fetch.fetch("fake", report=lambda f, m: messages.append((f, m)))
    where = tmp_path / "home" / "fake"
    assert paths == [where / f.name for f in src.files]
    for f in src.files:
        assert (where / f.name).read_bytes() == (folder / "good" / f.name).read_bytes()
    assert all("downloaded" in m for _, m in messages)
    assert _leftovers(where) == sorted(f.name for f in src.files)
    assert _fetch.verify("fake") == {f.name: "ok" for f in src.files}
    assert _fetch.missing("fake") == []
    assert _fetch.require("fake") == where

    n_requests = len(handler.requests)
    messages.clear()
    _fetch.fetch("fake", report=lambda f, m: messages.append((f, m)))
    assert len(handler.requests) == n_requests  # nothing downloaded again
    assert [m for _, m in messages] == ["already present (checksum ok)"] * 2

    _fetch.fetch("fake", force=True)
    assert len(handler.requests) == n_requests + 2


def test_progress_reports_bytes(fake):
    src, *_ = fake
    seen = []
    _fetch.fetch("fake", progress=lambda f, done, total: seen.append((f, done, total)))
    first = src.files[0]
    ours = [s for s in seen if s[0] == first.name]
    assert ours[0] == (first.name, 0, first.size)
    assert ours[-1] == (first.name, first.size, first.size)


def test_bad_checksum_leaves_nothing(fake, monkeypatch, tmp_path):
    src, base, *_ = fake
    wrong = RemoteFile(src.files[0].name, "0" * 64, src.files[0].size)
    monkeypatch.setitem(_fetch.SOURCES, "fake", Source("fake", "", (wrong,), src.mirrors))
    with pytest.raises(DataError) as err:
        _fetch.fetch("fake")
    msg = str(err.value)
    assert "\n" not in msg
    assert "checksum mismatch" in msg and wrong.name in msg and "different file" in msg
    assert src.files[0].sha256 in msg  # what the mirror actually serves
    assert _leftovers(tmp_path / "home" / "fake") == []  # no final file, no temp file


def test_wrong_size_is_refused(fake, monkeypatch, tmp_path):
    src, *_ = fake
    f = src.files[0]
    for size in (f.size - 1, f.size + 1):
        monkeypatch.setitem(_fetch.SOURCES, "fake", Source(
            "fake", "", (RemoteFile(f.name, f.sha256, size),), src.mirrors))
        with pytest.raises(DataError, match="size mismatch"):
            _fetch.fetch("fake")
        assert _leftovers(tmp_path / "home" / "fake") == []


def test_missing_file_is_not_found(fake, monkeypatch, tmp_path):
    src, *_ = fake
    ghost = RemoteFile("ghost.bin", "1" * 64, 10)
    monkeypatch.setitem(_fetch.SOURCES, "fake", Source("fake", "", (ghost,), src.mirrors))
    with pytest.raises(DataError, match=r"cannot fetch ghost\.bin: .*not found"):
        _fetch.fetch("fake")
    assert _leftovers(tmp_path / "home" / "fake") == []


def test_second_mirror_saves_the_day(fake, monkeypatch, tmp_path):
    src, base, folder, _ = fake
    for f in src.files:  # the first mirror serves other bytes of the same size
        (folder / "bad").mkdir(exist_ok=True)
        (folder / "bad" / f.name).write_bytes(b"x" * f.size)
    mirrors = ("http://127.0.0.1:9/", f"{base}/nowhere/", f"{base}/bad/", f"{base}/good/")
    monkeypatch.setitem(_fetch.SOURCES, "fake", Source("fake", "", src.files, mirrors))
    messages = []
    _fetch.fetch("fake", report=lambda f, m: messages.append(m), timeout=5)
    assert _fetch.verify("fake") == {f.name: "ok" for f in src.files}
    failed = [m for m in messages if m.startswith("failed")]
    assert len(failed) == 6
    assert any("cannot connect" in m for m in failed)
    assert any("not found" in m for m in failed)
    assert any("checksum mismatch" in m for m in failed)
    assert _leftovers(tmp_path / "home" / "fake") == sorted(f.name for f in src.files)


def test_all_mirrors_fail_in_one_line(fake, monkeypatch):
    src, base, *_ = fake
    mirrors = ("http://127.0.0.1:9/", f"{base}/nowhere/")
    monkeypatch.setitem(_fetch.SOURCES, "fake", Source("fake", "", src.files, mirrors))
    with pytest.raises(DataError) as err:
        _fetch.fetch("fake", timeout=5)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"fake: cannot fetch {src.files[0].name}: ")
    assert "http://127.0.0.1:9/" in msg and "cannot connect" in msg
    assert f"{base}/nowhere/" in msg and "not found" in msg


def test_no_mirror_at_all(fake, monkeypatch):
    src, *_ = fake
    monkeypatch.setitem(_fetch.SOURCES, "fake", Source("fake", "", src.files, ()))
    with pytest.raises(DataError, match="no mirror.*LSHPROF_MIRROR_FAKE"):
        _fetch.fetch("fake")


def test_mirror_argument_env_and_order(fake, monkeypatch):
    src, base, folder, handler = fake
    monkeypatch.setitem(_fetch.SOURCES, "fake", Source("fake", "", src.files, ("https://builtin.invalid/",)))
    monkeypatch.setenv("LSHPROF_MIRROR_FAKE", f"{base}/good")
    assert _fetch.mirrors_for("fake", "http://first.invalid/x") == [
        "http://first.invalid/x/", f"{base}/good/", "https://builtin.invalid/"]
    _fetch.fetch("fake")  # the env mirror is tried before the unreachable built-in one
    assert all(p.startswith("/good/") for p in handler.requests)
    assert _fetch.verify("fake") == {f.name: "ok" for f in src.files}

    monkeypatch.delenv("LSHPROF_MIRROR_FAKE")
    handler.requests.clear()
    _fetch.fetch("fake", mirror=f"{base}/good/", force=True)
    assert len(handler.requests) == 2


def test_env_name_of_a_dashed_source():
    assert _fetch._env_name("norb-small") == "LSHPROF_MIRROR_NORB_SMALL"


def test_file_urls_and_plain_folders(fake, tmp_path):
    src, base, folder, _ = fake
    _fetch.fetch("fake", mirror=(folder / "good").as_uri(), root=tmp_path / "a")
    assert _fetch.verify("fake", tmp_path / "a") == {f.name: "ok" for f in src.files}
    _fetch.fetch("fake", mirror=str(folder / "good"), root=tmp_path / "b")
    assert _fetch.verify("fake", tmp_path / "b") == {f.name: "ok" for f in src.files}
    ghost = Source("ghost", "", (RemoteFile("ghost.bin", "1" * 64, 3),), ())
    with pytest.raises(DataError, match="not found"):
        _fetch.fetch(ghost, mirror=str(folder), root=tmp_path / "c")


def test_corrupted_local_file_is_replaced(fake, tmp_path):
    src, *_ = fake
    _fetch.fetch("fake")
    target = tmp_path / "home" / "fake" / src.files[0].name
    data = bytearray(target.read_bytes())
    data[0] ^= 0xFF
    target.write_bytes(bytes(data))
    assert _fetch.missing("fake") == []  # the size is right; only hashing tells
    assert _fetch.verify("fake")[src.files[0].name] == "bad checksum"
    messages = []
    _fetch.fetch("fake", report=lambda f, m: messages.append(m))
    assert messages[0].startswith("replaced from")
    assert _fetch.verify("fake")[src.files[0].name] == "ok"


def test_interrupt_removes_the_temporary_file(fake, tmp_path):
    def stop(name, done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fetch.fetch("fake", progress=stop)
    assert _leftovers(tmp_path / "home" / "fake") == []


def test_data_home_precedence(monkeypatch, tmp_path):
    import platformdirs

    assert _fetch.data_home(tmp_path / "r") == tmp_path / "r"
    assert _fetch.data_home() == tmp_path / "home"
    assert _fetch.folder("mnist") == tmp_path / "home" / "mnist"
    assert _fetch.folder("mnist8m", tmp_path / "r") == tmp_path / "r" / "mnist"
    monkeypatch.delenv("LSHPROF_DATA")
    assert _fetch.data_home() == Path(platformdirs.user_cache_dir("lshprof"))
    assert _fetch.data_home(tmp_path / "r") == tmp_path / "r"


def test_root_beats_env_when_fetching(fake, tmp_path):
    src, *_ = fake
    _fetch.fetch("fake", root=tmp_path / "mine")
    assert _fetch.missing("fake", tmp_path / "mine") == []
    assert len(_fetch.missing("fake")) == 2
    assert not (tmp_path / "home").exists()


def test_require_names_the_command(fake, tmp_path):
    with pytest.raises(DataError) as err:
        _fetch.require("fake")
    msg = str(err.value)
    assert "lshprof data fetch fake" in msg and "--root" not in msg and "not found" in msg
    assert str(tmp_path / "home" / "fake") in msg
    with pytest.raises(DataError, match=r"lshprof data fetch fake --root .*other"):
        _fetch.require("fake", tmp_path / "other")
    with pytest.raises(DataError, match="lshprof data fetch mnist"):
        _fetch.require("mnist")


def test_require_checks_presence_only(fake, tmp_path):
    src, *_ = fake
    _fetch.fetch("fake")
    where = tmp_path / "home" / "fake"
    (where / src.files[1].name).write_bytes(b"short")  # the readers judge contents
    _fetch.require("fake")
    assert _fetch.missing("fake") == [where / src.files[1].name]  # but it is not the published file
    assert _fetch.verify("fake")[src.files[1].name] == "bad checksum"
    (where / src.files[1].name).unlink()
    _fetch.require("fake", only=[src.files[0].name])
    with pytest.raises(DataError, match=rf"fake: {src.files[1].name} not found in .*; fetch it with"):
        _fetch.require("fake")
    with pytest.raises(ConfigError, match="no file"):
        _fetch.require("fake", only=["nope"])


def test_require_accepts_an_unpacked_copy(monkeypatch, tmp_path):
    src = Source("packed", "", (RemoteFile("a.gz", "0" * 64, 10), RemoteFile("b.gz", "0" * 64, 10)))
    where = tmp_path / "home" / "packed"
    where.mkdir(parents=True)
    (where / "a").write_bytes(b"unpacked")
    (where / "b.gz").write_bytes(b"packed")
    assert _fetch.require(src) == where
    assert _fetch.local_file(where, "a.gz") == where / "a"
    assert _fetch.local_file(where, "b.gz") == where / "b.gz"
    (where / "a").unlink()
    with pytest.raises(DataError, match="a.gz not found"):
        _fetch.require(src)


def test_unknown_and_generated_names():
    with pytest.raises(ConfigError, match="unknown data source 'nope'; valid: mnist, norb-small"):
        _fetch.get_source("nope")
    with pytest.raises(ConfigError, match="generated and has no files"):
        _fetch.get_source("gaussian")
    assert _fetch.get_source("mnist8m").name == "mnist"


def test_builtin_table_is_well_formed():
    assert set(_fetch.SOURCES) >= {"mnist", "norb-small"}
    assert len(_fetch.SOURCES["mnist"].files) == 4
    assert len(_fetch.SOURCES["norb-small"].files) == 6
    for src in _fetch.SOURCES.values():
        assert src.mirrors and all(m.startswith("https://") for m in src.mirrors)
        for f in src.files:
            assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.size > 0


def test_sources_file(monkeypatch, tmp_path):
    path = tmp_path / "sources.json"
    path.write_text(json.dumps({"mine": {"files": [{"name": "a.bin", "sha256": "AB" * 32}],
                                         "mirrors": ["https://example.invalid/d/"]}}))
    monkeypatch.setenv("LSHPROF_SOURCES_FILE", str(path))
    src = _fetch.get_source("mine")
    assert src.files == (RemoteFile("a.bin", "ab" * 32, None),)
    assert "mnist" in _fetch.sources()
    for bad, match in (("{", "not valid JSON"), ("[]", "object of sources"),
                       ('{"x": {"files": [{"name": "../a", "sha256": "' + "0" * 64 + '"}]}}',
                        "plain file name"),
                       ('{"x": {"files": [{"name": "a", "sha256": "zz"}]}}', "64 hex digits"),
                       ('{"x": {"files": []}}', "non-empty list"),
                       ('{"x": {"files": [{"name": "a", "sha256": "' + "0" * 64 + '"}], '
                        '"extra": 1}}', "unknown key 'extra'")):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=match):
            _fetch.sources()
    monkeypatch.setenv("LSHPROF_SOURCES_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="no such file"):
        _fetch.sources()


# --------------------------------------------------------------------------- the command


@pytest.fixture
def fake_mnist(server, tmp_path):
    """Files named like MNIST's on the local server, and a sources file describing them."""
    base, folder, _ = server
    files = [_write(folder / "m", name, name.encode() * 50) for name in MNIST_NAMES]

    def sources(files=files):
        path = tmp_path / "sources.json"
        path.write_text(json.dumps({"mnist": {
            "summary": "fake", "mirrors": [],
            "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in files]}}))
        return path

    return base, folder, files, sources


@pytest.fixture
def data_cmd(lshprof_run):
    """``data_cmd(sources file, *args)``: ``lshprof data ARGS`` in a subprocess, with that
    sources file."""

    def run(sources_file, *args):
        return lshprof_run("data", *args, env={"LSHPROF_SOURCES_FILE": sources_file}, timeout=60)

    return run


def test_cli_fetch_good(data_cmd, fake_mnist, tmp_path):
    base, folder, files, sources = fake_mnist
    root = tmp_path / "cache"
    r = data_cmd(sources(), "fetch", "mnist", "--root", str(root), "--mirror", f"{base}/m/")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for f in files:
        assert (root / "mnist" / f.name).read_bytes() == (folder / "m" / f.name).read_bytes()
        assert f"{f.name}: downloaded from {base}/m/{f.name}" in r.stdout
    r = data_cmd(sources(), "fetch", "mnist8m", "--root", str(root), "--mirror", f"{base}/m/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("already present") == 4
    r = data_cmd(sources(), "verify", "mnist", "--root", str(root))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(" ok ") == 4
    r = data_cmd(sources(), "path", "mnist", "--root", str(root))
    assert r.stdout.strip() == str(root / "mnist")
    r = data_cmd(sources(), "fetch", "mnist", "--root", str(root), "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = data_cmd(sources(), "list", "--root", str(root))
    assert r.returncode == 0 and "present" in r.stdout and "norb-small" in r.stdout


def test_cli_fetch_bad_checksum(data_cmd, fake_mnist, tmp_path):
    base, folder, files, sources = fake_mnist
    broken = [dataclasses.replace(files[0], sha256="f" * 64), *files[1:]]
    root = tmp_path / "cache"
    r = data_cmd(sources(broken), "fetch", "mnist", "--root", str(root),
             "--mirror", f"{base}/m/")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lshprof data: error: mnist: cannot fetch")
    assert "checksum mismatch" in lines[0]
    assert not (root / "mnist" / files[0].name).exists()
    assert [p.name for p in (root / "mnist").iterdir()] == []
    r = data_cmd(sources(broken), "verify", "mnist", "--root", str(root))
    assert r.returncode == 1 and "missing" in r.stdout


def test_cli_fetch_missing_file(data_cmd, fake_mnist, tmp_path):
    base, folder, files, sources = fake_mnist
    (folder / "m" / files[2].name).unlink()
    r = data_cmd(sources(), "fetch", "mnist", "--root", str(tmp_path / "cache"),
             "--mirror", f"{base}/m/")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not found" in lines[0] and files[2].name in lines[0]


def test_cli_unknown_name(data_cmd, fake_mnist):
    *_, sources = fake_mnist
    r = data_cmd(sources(), "fetch", "nope")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "lshprof data: error: unknown data source 'nope'; valid: mnist, norb-small"]


def test_parser_shape():
    from lshprof.cli.data import add_parser

    parser = argparse.ArgumentParser(prog="lshprof")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "fetch", "mnist", "--mirror", "a", "--mirror", "b",
                              "--force", "--root", "r"])
    assert (args.name, args.mirror, args.force, args.root, args.quiet) == (
        "mnist", ["a", "b"], True, "r", False)
    assert parser.parse_args(["data", "path"]).name is None
