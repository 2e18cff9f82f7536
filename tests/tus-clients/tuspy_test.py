"""tuspy (the tus project's Python client) against fileupload's tus server.

Run by scripts/test-tus-clients.sh with the interpreter of the virtual
environment scripts/setup makes (tests/tus-clients/.venv, tuspy and its
dependencies pinned with hashes in requirements.txt), once per front end:
TUS_FRONT names it, TUS_ENDPOINT is the base before /files and
/upload/status, TUS_POOL its pool, FILEUPLOAD_BIN the binary.

tuspy's checksum algorithm is sha1 (BaseUploader.CHECKSUM_ALGORITHM_PAIR);
a subclass that sets the pair is how tuspy is told another one.
"""

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusUploadFailed
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

ENDPOINT = os.environ["TUS_ENDPOINT"]
POOL = os.environ["TUS_POOL"]
BIN = os.environ["FILEUPLOAD_BIN"]
FRONT = os.environ["TUS_FRONT"]
MIB = 1024 * 1024
CHUNK = 2 * MIB


class Sha256Uploader(Uploader):
    """tuspy told to use sha256 for Upload-Checksum."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def wrong_sha256(data=b""):
    """A sha256 of other bytes: a well-formed digest that does not match."""
    return hashlib.sha256(b"not " + data)


class WrongChecksumUploader(Uploader):
    """tuspy sending, through its own request machinery, a digest that does
    not match its chunk."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", wrong_sha256)


def upload_id(url):
    return url.rstrip("/").rsplit("/", 1)[-1]


def status(upload_url):
    answer = requests.get(
        ENDPOINT + "/upload/status", params={"X-Progress-ID": upload_id(upload_url)}, timeout=30
    )
    return answer.json()


def head(upload_url):
    answer = requests.head(upload_url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    return answer.status_code, answer.headers.get("Upload-Offset"), answer.headers.get("Upload-Length")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_path(upload_url):
    """The file of a complete upload, as `fileupload path` names it."""
    out = subprocess.run(
        [BIN, "--directory", POOL, "path", upload_id(upload_url)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


class Tuspy(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fileupload-tuspy-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.client = TusClient(ENDPOINT + "/files")

    def make_file(self, name, size):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        return path, sha256_of(path)

    def assert_done(self, upload_url, size, sha256):
        s = status(upload_url)
        self.assertEqual(s["state"], "done", s)
        self.assertEqual(s["files"][0]["length"], size)
        self.assertEqual(s["files"][0]["sha256"], sha256)
        self.assertEqual(sha256_of(stored_path(upload_url)), sha256)

    def test_sha1_checksums_stop_at_half_then_resume_from_url_storage(self):
        size = 12 * CHUNK + 321
        path, sha256 = self.make_file("half.bin", size)
        storage = FileStorage(os.path.join(self.dir, "urls.json"))
        self.addCleanup(storage.close)
        options = dict(
            chunk_size=CHUNK,
            upload_checksum=True,
            store_url=True,
            url_storage=storage,
            metadata={"filename": "half.bin"},
        )
        first = self.client.uploader(path, **options)
        self.assertEqual(first.checksum_algorithm_name, "sha1")
        first.upload(stop_at=size // 2)
        # Every PATCH carried tuspy's sha1 of its chunk; the last one is kept.
        sent = first.request._request_headers["upload-checksum"]
        self.assertTrue(sent.startswith("sha1 "), sent)
        self.assertEqual(len(base64.b64decode(sent.split(" ", 1)[1])), 20)
        half = first.offset
        self.assertGreaterEqual(half, size // 2)
        self.assertLess(half, size)
        self.assertEqual(head(first.url), (200, str(half), str(size)))
        s = status(first.url)
        self.assertEqual((s["state"], s["received"]), ("uploading", half))

        # A new uploader of the same file finds the URL in the storage and
        # the offset by HEAD.
        second = self.client.uploader(path, **options)
        self.assertEqual(second.url, first.url)
        self.assertEqual(second.offset, half)
        second.upload()
        self.assertEqual(second.offset, size)
        self.assert_done(first.url, size, sha256)

    def test_sha256_checksums_resume_by_url(self):
        size = 5 * CHUNK + 7
        path, sha256 = self.make_file("by-url.bin", size)
        first = Sha256Uploader(path, client=self.client, chunk_size=CHUNK, upload_checksum=True)
        first.upload(stop_at=2 * CHUNK)
        self.assertTrue(first.request._request_headers["upload-checksum"].startswith("sha256 "))
        self.assertEqual(first.offset, 2 * CHUNK)
        second = Sha256Uploader(path, url=first.url, chunk_size=CHUNK, upload_checksum=True)
        self.assertEqual(second.offset, 2 * CHUNK)
        second.upload()
        self.assert_done(first.url, size, sha256)

    def test_a_chunk_with_a_wrong_checksum_is_460_and_not_appended(self):
        size = 3 * CHUNK
        path, sha256 = self.make_file("wrong.bin", size)
        good = self.client.uploader(path, chunk_size=CHUNK, upload_checksum=True)
        good.upload(stop_at=CHUNK)
        self.assertEqual(good.offset, CHUNK)
        # The data file while incomplete (src/pool/resumable.rs).
        data = os.path.join(POOL, upload_id(good.url), "0.part")

        bad = WrongChecksumUploader(path, url=good.url, chunk_size=CHUNK, upload_checksum=True)
        self.assertEqual(bad.offset, CHUNK)
        with self.assertRaises(TusUploadFailed) as caught:
            bad.upload_chunk()
        self.assertEqual(caught.exception.status_code, 460)
        # Nothing appended: the offset, the status and the file are as before.
        self.assertEqual(head(good.url), (200, str(CHUNK), str(size)))
        self.assertEqual(status(good.url)["received"], CHUNK)
        self.assertEqual(os.path.getsize(data), CHUNK)

        # The right bytes then complete it.
        again = self.client.uploader(path, url=good.url, chunk_size=CHUNK, upload_checksum=True)
        again.upload()
        self.assert_done(good.url, size, sha256)


if __name__ == "__main__":
    unittest.main(verbosity=2)
