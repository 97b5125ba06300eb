"""Downloads against a real HTTP server on 127.0.0.1 serving local files: Range resume, retries, checksums."""

import hashlib
import http.server
import io
import os
import re
import tarfile
import threading
from pathlib import Path

import pytest

from study.datasets.download import MUSAN, DownloadError, Resource, download, extract, fetch_and_extract
from study.datasets.musan import split_musan
from study.prepare import main
from tests.study.fake_datasets import make_musan


class Server:
    """A loopback HTTP server for one folder; `ranges` honours Range requests, `cut_first` drops the first
    response after that many body bytes. `requests` records (path, Range header) of every request."""

    def __init__(self, folder: Path, ranges: bool = True, cut_first: int | None = None):
        self.folder, self.ranges, self.cut_first = folder, ranges, cut_first
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                path = server.folder / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                start = int(match.group(1)) if (match and server.ranges) else 0
                if match and server.ranges and start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_first is not None and len(server.requests) == 1:
                    body = body[: server.cut_first]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def payload(tmp_path):
    """A 3 MB file served as /resources/17/musan.tar.gz, and its Resource."""
    data = os.urandom(3 * 2**20 + 12345)
    path = tmp_path / "www" / "resources" / "17" / "musan.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return data, path


def resource(server: Server, data: bytes) -> Resource:
    return Resource("test", f"{server.base}/resources/17/musan.tar.gz", hashlib.md5(data).hexdigest(), len(data))


def test_download_verifies_and_then_skips(payload, tmp_path):
    data, path = payload
    with Server(path.parents[2]) as server:
        dest = download(resource(server, data), tmp_path / "dl" / "musan.tar.gz", progress=False)
        assert dest.read_bytes() == data and not (tmp_path / "dl" / "musan.tar.gz.partial").exists()
        download(resource(server, data), dest, progress=False)
    assert server.requests == [("/resources/17/musan.tar.gz", None)]  # the second call only checked the file


def test_an_interrupted_download_resumes_with_a_range_request(payload, tmp_path):
    data, path = payload
    partial = tmp_path / "dl" / "musan.tar.gz.partial"
    partial.parent.mkdir()
    partial.write_bytes(data[:1_000_000])
    with Server(path.parents[2]) as server:
        dest = download(resource(server, data), tmp_path / "dl" / "musan.tar.gz", progress=False)
    assert dest.read_bytes() == data
    assert server.requests == [("/resources/17/musan.tar.gz", "bytes=1000000-")]


def test_a_dropped_connection_is_resumed(payload, tmp_path):
    data, path = payload
    with Server(path.parents[2], cut_first=700_000) as server:
        dest = download(resource(server, data), tmp_path / "musan.tar.gz", progress=False)
    assert dest.read_bytes() == data
    assert server.requests[0][1] is None and server.requests[1][1] == "bytes=700000-"


def test_a_server_ignoring_range_restarts_from_zero(payload, tmp_path):
    data, path = payload
    (tmp_path / "musan.tar.gz.partial").write_bytes(b"x" * 5000)  # stale bytes that must not survive
    with Server(path.parents[2], ranges=False) as server:
        dest = download(resource(server, data), tmp_path / "musan.tar.gz", progress=False)
    assert dest.read_bytes() == data and len(server.requests) == 1


def test_a_checksum_mismatch_is_refused_and_the_file_removed(payload, tmp_path):
    data, path = payload
    with Server(path.parents[2]) as server:
        wrong = Resource("test", f"{server.base}/resources/17/musan.tar.gz", "0" * 32, len(data))
        with pytest.raises(DownloadError, match=f"MD5 {hashlib.md5(data).hexdigest()} does not match the published 0{{32}}"):
            download(wrong, tmp_path / "musan.tar.gz", progress=False)
        missing = Resource("test", f"{server.base}/nothing-here.zip", "0" * 32, None)
        with pytest.raises(DownloadError, match="nothing-here.zip: HTTP 404"):
            download(missing, tmp_path / "nothing-here.zip", progress=False)
    assert not (tmp_path / "musan.tar.gz").exists() and not (tmp_path / "musan.tar.gz.partial").exists()


def test_musan_download_extract_and_split(tmp_path, capsys):
    """The whole `--download` path on a small tar.gz with the real MUSAN layout, from a loopback mirror."""
    make_musan(tmp_path / "made")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "made" / "musan", arcname="musan")
    www = tmp_path / "www" / "resources" / "17"
    www.mkdir(parents=True)
    (www / "musan.tar.gz").write_bytes(buffer.getvalue())
    data = buffer.getvalue()
    with Server(tmp_path / "www") as server:
        mirrored = Resource(MUSAN.name, MUSAN.url, hashlib.md5(data).hexdigest(), len(data)).at(server.base)
        assert mirrored.url == f"{server.base}/resources/17/musan.tar.gz"
        fetch_and_extract(mirrored, tmp_path / "root", progress=False)
        fetch_and_extract(mirrored, tmp_path / "root", progress=False)  # extracted already: no request
        assert len(server.requests) == 1
        report = split_musan(tmp_path / "root", tmp_path / "out", progress=False)
        assert report.written == 7

        # the command line checks the published size and MD5, which this small archive does not have
        code = main(["musan", "--root", str(tmp_path / "cli"), "--out", str(tmp_path / "cli"), "--download",
                     "--mirror", server.base])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{server.base}/resources/17/musan.tar.gz" in err
    assert f"{len(data):,} bytes, but" in err and "11,086,114,085" in err
    assert not (tmp_path / "cli" / "musan.tar.gz").exists()


def test_extract_refuses_members_outside_the_folder(tmp_path):
    import zipfile

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "no")
    with pytest.raises(Exception, match="would be written outside"):
        extract(archive, tmp_path / "into")
    assert not (tmp_path / "outside.txt").exists()


def test_a_mirror_that_is_no_http_url_is_one_error_line(tmp_path, capsys):
    """Refused before anything is fetched (urllib would raise ValueError on the first request)."""
    assert main(["musan", "--root", str(tmp_path), "--out", str(tmp_path / "root"), "--download",
                 "--mirror", "us.openslr.org"]) == 2
    expected = "error: --mirror 'us.openslr.org' is not an http(s) URL, e.g. https://us.openslr.org\n"
    assert capsys.readouterr().err == expected
    assert list(tmp_path.iterdir()) == [tmp_path / "root"]
