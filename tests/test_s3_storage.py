"""Recordings in an S3-compatible store: the SigV4 signer against AWS's published examples,
S3Storage against a real S3 server (moto, with signature checking on), the store being down,
and the service linking, serving, verifying and purging recordings kept in a bucket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from config import ConfigError, load_settings
from hotline.web.recordings_api import PLAYBACK_INDEX
from journal.models import Recording, Request
from recordings.reconcile import reconcile, verify
from recordings.retention import purge
from recordings.s3 import (
    EMPTY_SHA256,
    S3Storage,
    SigV4Signer,
    canonical_query,
    canonical_request,
    normalize_prefix,
    object_key,
    uri_encode,
)
from recordings.storage import CHUNK_BYTES, StorageUnavailable, StoredFile
from tests.conftest import load_meta, scenario_dirs, service_env, trace_items
from tests.helpers import bearer, create_user, login, wait_for
from tests.test_recordings import replay, wav_duration
from tests.test_recordings_cli import hotline
from tests.test_recordings_files import only_recording, s01_file

SCENARIOS = {s.name[:3]: s for s in scenario_dirs()}
needs_s01 = pytest.mark.skipif("s01" not in SCENARIOS, reason="recorded traces not available")
BUCKET = "hotline-recordings"


# ---------------------------------------------------------------------- SigV4 test vectors
# "Example signature calculations" of the S3 API reference (sig-v4-header-based-auth):
# bucket examplebucket, 2013-05-24T00:00:00Z, us-east-1, the documentation's example keys.
DOC_SIGNER = SigV4Signer("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
DOC_TIME = datetime(2013, 5, 24, tzinfo=UTC)
DOC_HOST = {"host": "examplebucket.s3.amazonaws.com"}


def signature_of(headers: dict[str, str]) -> str:
    return headers["authorization"].rpartition("Signature=")[2]


def test_sigv4_get_object_example() -> None:
    headers = DOC_SIGNER.sign("GET", "/test.txt", "", {**DOC_HOST, "Range": "bytes=0-9"},
                              payload_hash=EMPTY_SHA256, now=DOC_TIME)
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert headers["x-amz-date"] == "20130524T000000Z"
    signed = {k: v for k, v in headers.items() if k != "authorization"}
    canonical = canonical_request("GET", "/test.txt", "", signed, EMPTY_SHA256)
    assert hashlib.sha256(canonical.encode()).hexdigest() == \
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"


def test_sigv4_put_object_example_encodes_the_path() -> None:
    payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    assert payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    path = uri_encode("/test$file.text", keep_slash=True)
    assert path == "/test%24file.text"
    headers = DOC_SIGNER.sign("PUT", path, "", {
        **DOC_HOST, "Date": "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-storage-class": "REDUCED_REDUNDANCY"}, payload_hash=payload, now=DOC_TIME)
    assert "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class," \
        in headers["authorization"]
    assert signature_of(headers) == \
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


@pytest.mark.parametrize(("params", "query", "signature"), [
    ({"lifecycle": ""}, "lifecycle=",
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ({"prefix": "J", "max-keys": "2"}, "max-keys=2&prefix=J",
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
], ids=["get-bucket-lifecycle", "list-objects"])
def test_sigv4_bucket_examples_with_a_query(params: dict[str, str], query: str,
                                            signature: str) -> None:
    assert canonical_query(params) == query
    headers = DOC_SIGNER.sign("GET", "/", query, DOC_HOST, payload_hash=EMPTY_SHA256,
                              now=DOC_TIME)
    assert signature_of(headers) == signature


def test_query_and_path_encoding() -> None:
    assert canonical_query({"continuation-token": "a/b+c=", "list-type": "2"}) == \
        "continuation-token=a%2Fb%2Bc%3D&list-type=2"
    assert uri_encode("2026/11/25/in-8800-+7916 x~.wav", keep_slash=True) == \
        "2026/11/25/in-8800-%2B7916%20x~.wav"


def test_keys_never_leave_the_prefix() -> None:
    assert object_key("monitor/", "2026/11/25/a.wav") == "monitor/2026/11/25/a.wav"
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\\b", "a//b", "./a", "", "a\x00b"):
        with pytest.raises(ValueError):
            object_key("monitor/", bad)
    assert normalize_prefix("/monitor/pbx1/") == "monitor/pbx1/"
    assert normalize_prefix("") == ""
    with pytest.raises(ValueError):
        normalize_prefix("a/../b")


# ---------------------------------------------------------------------- settings
S3_REQUIRED = {"recordings_storage": "s3", "s3_endpoint": "http://minio:9000",
               "s3_bucket": BUCKET, "s3_access_key": "hotline", "s3_secret_key": "s3cret-key"}


def test_settings_default_to_local_and_require_the_s3_values() -> None:
    assert load_settings().recordings_storage == "local"
    settings = load_settings(**S3_REQUIRED)
    assert settings.s3_region == "us-east-1" and settings.s3_prefix == ""
    assert "s3cret-key" not in repr(settings)
    for name in ("s3_endpoint", "s3_bucket", "s3_access_key", "s3_secret_key"):
        values = {k: v for k, v in S3_REQUIRED.items() if k != name}
        with pytest.raises(ConfigError, match=f"^HOTLINE_{name.upper()}: required when "):
            load_settings(**values)


@pytest.mark.parametrize(("name", "value"), [
    ("s3_endpoint", "minio:9000"),
    ("s3_endpoint", "http://minio:9000/bucket"),
    ("s3_bucket", "Recordings_2026"),
    ("s3_prefix", "monitor/../etc"),
    ("recordings_storage", "nfs"),
])
def test_settings_refuse_bad_s3_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^HOTLINE_{name.upper()}: "):
        load_settings(**{**S3_REQUIRED, name: value})


# ---------------------------------------------------------------------- a real S3 server
@dataclass
class MotoS3:
    """moto's S3 server with one IAM user; signatures are checked (a wrong one is 403)."""

    endpoint: str
    access_key: str
    secret_key: str
    client: Any  # boto3 S3 client, to put objects the way a copy job would

    def storage(self, prefix: str, **options: Any) -> S3Storage:
        return S3Storage(self.endpoint, BUCKET, access_key=self.access_key,
                         secret_key=self.secret_key, prefix=prefix, **options)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=data)

    def settings(self, prefix: str) -> dict[str, Any]:
        return {**S3_REQUIRED, "s3_endpoint": self.endpoint, "s3_prefix": prefix,
                "s3_access_key": self.access_key, "s3_secret_key": self.secret_key}


def _moto_auth(endpoint: str, count: str) -> str:
    """Sets after how many requests moto starts checking credentials; returns the old one."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    moto_server = pytest.importorskip("moto.server")
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="setup", aws_secret_access_key="setup")
    iam.create_user(UserName="hotline")
    key = iam.create_access_key(UserName="hotline")["AccessKey"]
    iam.put_user_policy(UserName="hotline", PolicyName="recordings", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
    client.create_bucket(Bucket=BUCKET)
    previous = _moto_auth(endpoint, "0")
    try:
        yield MotoS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], client)
    finally:
        _moto_auth(endpoint, previous)
        server.stop()


@pytest.fixture
async def store(moto_s3: MotoS3) -> AsyncIterator[S3Storage]:
    """An S3Storage on a prefix of its own (tests do not see each other's objects)."""
    storage = moto_s3.storage(f"t-{uuid.uuid4().hex[:8]}/")
    yield storage
    await storage.aclose()


async def read_all(storage: S3Storage, stored: StoredFile, start: int, count: int) -> bytes:
    return b"".join([chunk async for chunk in storage.read_range(stored, start, count)])


@needs_s01
async def test_stat_ranges_and_delete_of_a_recorded_wav(moto_s3: MotoS3,
                                                        store: S3Storage) -> None:
    source, relative = s01_file()
    data = source.read_bytes()
    moto_s3.put(store.prefix + relative, data)
    stored = await store.stat(relative)
    assert stored is not None and stored.path is None
    assert stored.key == relative and stored.size == len(data)
    assert abs(stored.mtime_ns / 1e9 - datetime.now(UTC).timestamp()) < 120
    size = len(data)
    for start, count in ((0, 44), (0, 100), (size // 2, 1000), (size - 64, 64), (0, size)):
        assert await read_all(store, stored, start, count) == data[start:start + count]
    assert await read_all(store, stored, 10, 0) == b""
    await store.delete(stored)
    assert await store.stat(relative) is None
    await store.delete(stored)  # already gone: not an error
    with pytest.raises(FileNotFoundError):
        await read_all(store, stored, 0, 10)


async def test_reads_are_streamed_in_chunks(moto_s3: MotoS3, store: S3Storage) -> None:
    data = bytes(range(256)) * (3 * CHUNK_BYTES // 256 + 7)
    moto_s3.put(store.prefix + "big.wav", data)
    stored = await store.stat("big.wav")
    assert stored is not None
    chunks = [chunk async for chunk in store.read_range(stored, 5, len(data) - 10)]
    assert len(chunks) > 1 and max(map(len, chunks)) <= CHUNK_BYTES
    assert b"".join(chunks) == data[5:-5]


async def test_missing_objects_and_refused_keys(moto_s3: MotoS3, store: S3Storage) -> None:
    moto_s3.put("etc/passwd", b"root")  # outside the prefix: never reachable
    assert await store.stat("2026/01/01/nothing.wav") is None
    for bad in ("../x", "/etc/passwd", "../../etc/passwd", "a\\b", "a/./b"):
        assert await store.stat(bad) is None
        with pytest.raises(ValueError):
            await read_all(store, StoredFile(bad, 4, 0), 0, 4)
        with pytest.raises(ValueError):
            await store.delete(StoredFile(bad, 4, 0))
    assert moto_s3.client.get_object(Bucket=BUCKET, Key="etc/passwd")["Body"].read() == b"root"


async def test_list_keys_follows_continuation_tokens(moto_s3: MotoS3) -> None:
    prefix = f"list-{uuid.uuid4().hex[:8]}/"
    names = [f"2026/11/{day:02d}/in-{n}.wav" for day in (24, 25) for n in range(4)]
    for name in names:
        moto_s3.put(prefix + name, b"RIFF")
    moto_s3.put(f"other-{prefix}x.wav", b"RIFF")  # a neighbouring prefix stays out
    storage = moto_s3.storage(prefix, page_size=3)  # 8 keys: three pages
    try:
        assert sorted([key async for key in storage.list_keys()]) == sorted(names)
        assert sorted([key async for key in storage.list_keys("2026/11/25/")]) == names[4:]
        assert [key async for key in storage.list_keys("2026/12/")] == []
    finally:
        await storage.aclose()


async def test_wrong_credentials_are_an_unavailable_store(moto_s3: MotoS3) -> None:
    storage = S3Storage(moto_s3.endpoint, BUCKET, access_key=moto_s3.access_key,
                        secret_key="not-the-secret")
    try:
        with pytest.raises(StorageUnavailable, match="403"):
            await storage.stat("2026/11/25/a.wav")
    finally:
        await storage.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def down_storage(**options: Any) -> S3Storage:
    return S3Storage(f"http://127.0.0.1:{closed_port()}", BUCKET, access_key="a",
                     secret_key="b", **options)


async def test_store_down_raises_storage_unavailable() -> None:
    storage = down_storage()
    try:
        with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1"):
            await storage.stat("2026/11/25/a.wav")
        with pytest.raises(StorageUnavailable):
            await read_all(storage, StoredFile("2026/11/25/a.wav", 10, 0), 0, 10)
        with pytest.raises(StorageUnavailable):
            await storage.delete(StoredFile("2026/11/25/a.wav", 10, 0))
        with pytest.raises(StorageUnavailable):
            _ = [key async for key in storage.list_keys()]
    finally:
        await storage.aclose()


async def test_server_errors_and_timeouts_raise_storage_unavailable() -> None:
    async def slow_down(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="<Error><Code>SlowDown</Code></Error>")

    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", f"/{BUCKET}/busy/{{key:.*}}", slow_down)
    app.router.add_route("*", f"/{BUCKET}/hang/{{key:.*}}", hang)
    server = TestServer(app)
    await server.start_server()
    endpoint = str(server.make_url("/")).rstrip("/")
    busy = S3Storage(endpoint, BUCKET, access_key="a", secret_key="b", prefix="busy")
    stuck = S3Storage(endpoint, BUCKET, access_key="a", secret_key="b", prefix="hang",
                      timeout_s=0.2)
    try:
        with pytest.raises(StorageUnavailable, match="503 SlowDown"):
            await read_all(busy, StoredFile("a.wav", 10, 0), 0, 10)
        with pytest.raises(StorageUnavailable, match="Timeout"):
            await stuck.stat("a.wav")
    finally:
        await busy.aclose()
        await stuck.aclose()
        await server.close()


async def test_aclose_closes_the_shared_session(moto_s3: MotoS3, store: S3Storage) -> None:
    assert await store.stat("a.wav") is None
    session = store._session
    assert session is not None and not session.closed
    assert await store.stat("b.wav") is None
    assert store._session is session  # one session for all requests
    await store.aclose()
    assert session.closed


# ---------------------------------------------------------------------- the service on S3
def s3_prefix() -> str:
    return f"pbx-{uuid.uuid4().hex[:8]}/"


@needs_s01
async def test_worker_links_and_http_serves_a_recording_from_s3(
        tmp_path: Path, moto_s3: MotoS3, make_settings: Any, start_service: Any,
        replay_peer: Any) -> None:
    source, relative = s01_file()
    data = source.read_bytes()
    prefix = s3_prefix()
    moto_s3.put(prefix + relative, data)  # what `mc mirror` of the PBX spool does
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer,
                           tmp_path / "unused", **moto_s3.settings(prefix))
    storage = harness.services.recordings.storage
    assert isinstance(storage, S3Storage)
    assert storage.aclose in harness.services.stop_hooks
    rec, req = await only_recording(harness)
    assert rec.status == "linked" and rec.bytes == len(data)
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert rec.duration_s == pytest.approx(wav_duration(source), abs=0.01)

    await create_user(harness.services, "admin", "admin")
    token = await login(harness, "admin")
    url = harness.url(f"/api/v1/requests/{req.number}/recordings/{rec.id}")
    size = len(data)
    for header, (start, end) in {"bytes=0-99": (0, 99), "bytes=30000-30999": (30000, 30999),
                                 "bytes=-64": (size - 64, size - 1)}.items():
        async with harness.http.get(url, headers={**bearer(token), "Range": header}) as resp:
            assert resp.status == 206, header
            assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
            assert await resp.read() == data[start:end + 1]
    async with harness.http.get(url, headers=bearer(token)) as resp:
        assert resp.status == 200 and await resp.read() == data
        assert resp.headers["ETag"] == f'"{rec.sha256}"'

    async def store_down(relative: str) -> None:
        raise StorageUnavailable("S3 at 127.0.0.1:1: connection refused")

    storage.stat = store_down  # type: ignore[method-assign]
    harness.server.app[PLAYBACK_INDEX].clear()  # ask the store, not its last answer
    async with harness.http.get(url, headers=bearer(token)) as resp:
        assert resp.status == 503  # "try again later", not a server fault
        assert (await resp.json())["error"]["code"] == "storage_unavailable"


@needs_s01
async def test_reconcile_verify_and_purge_on_s3(tmp_path: Path, moto_s3: MotoS3,
                                                make_settings: Any, start_service: Any,
                                                replay_peer: Any) -> None:
    source, relative = s01_file()
    data = source.read_bytes()
    prefix = s3_prefix()
    moto_s3.put(prefix + relative, data)
    moto_s3.put(prefix + "2026/11/25/stray.wav", data[:44])
    moto_s3.put(prefix + "2026/11/25/notes.txt", b"not a recording")
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer,
                           tmp_path / "unused", http=False, **moto_s3.settings(prefix))
    worker = harness.services.recordings
    rec, req = await only_recording(harness)
    assert rec.status == "linked"
    report = await reconcile(worker)
    assert report.files_without_call == ["2026/11/25/stray.wav"]
    assert (await reconcile(worker, since=datetime.now(UTC) + timedelta(hours=1))) \
        .files_without_call == []

    assert (await verify(worker)).tampered == []
    changed = bytearray(data)
    changed[5000] ^= 0xFF
    moto_s3.put(prefix + relative, bytes(changed))
    assert [r_id for _n, r_id, _p in (await verify(worker)).tampered] == [rec.id]
    moto_s3.put(prefix + relative, data)
    assert len((await verify(worker)).restored) == 1

    async with harness.services.db.sessions.begin() as session:
        await session.execute(update(Request).where(Request.id == req.id)
                              .values(status="closed", closed_at=datetime.now(UTC)))
    later = datetime.now(UTC) + timedelta(days=1826)
    assert [rid for _n, rid, _p in (await purge(worker, 1825, now=later)).purged] == [rec.id]
    assert await worker.storage.stat(relative) is None
    async with harness.services.db.session() as session:
        purged = await session.get(Recording, rec.id)
        assert purged is not None and purged.status == "purged"


@needs_s01
async def test_a_store_outage_delays_linking_but_never_marks_missing(
        tmp_path: Path, moto_s3: MotoS3, make_settings: Any, start_service: Any,
        replay_peer: Any) -> None:
    source, relative = s01_file()
    prefix = s3_prefix()
    moto_s3.put(prefix + relative, source.read_bytes())
    scenario = SCENARIOS["s01"]
    peer = await replay_peer(trace_items(scenario))
    settings = make_settings(ami_port=peer.port, recordings_missing_after_s=0.3,
                             **service_env(load_meta(scenario)), **moto_s3.settings(prefix))
    harness = await start_service(settings)
    worker = harness.services.recordings
    reachable, worker.storage = worker.storage, down_storage()
    worker.stable_s = worker.poll_s = 0.05
    worker.max_poll_s = 0.2
    await peer.done.wait()
    await harness.wait_calls_done()
    await wait_for(lambda: worker.busy and worker.stats.errors == 0)
    await asyncio.sleep(1.0)  # well past the 0.3 s deadline
    rec, req = await only_recording(harness)
    assert rec.status == "pending" and not req.recording_missing
    await worker.storage.aclose()
    worker.storage = reachable
    await wait_for(lambda: not worker.busy)
    rec, _req = await only_recording(harness)
    assert rec.status == "linked"
    async with harness.services.db.session() as session:
        statuses = set(await session.scalars(select(Recording.status)))
    assert statuses == {"linked"}


@needs_s01
async def test_cli_commands_on_s3_and_with_the_store_down(
        tmp_path: Path, db_url: Any, moto_s3: MotoS3, make_settings: Any, start_service: Any,
        replay_peer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if db_url[1] is not None:
        pytest.skip("the CLI reads HOTLINE_DATABASE_URL: exercised on SQLite")
    source, relative = s01_file()
    prefix = s3_prefix()
    moto_s3.put(prefix + relative, source.read_bytes())
    harness = await replay(SCENARIOS["s01"], make_settings, start_service, replay_peer,
                           tmp_path / "unused", http=False, **moto_s3.settings(prefix))
    settings = harness.services.settings
    for name, value in moto_s3.settings(prefix).items():
        monkeypatch.setenv(f"HOTLINE_{name.upper()}", value)
    code, out, err = await hotline(settings, "recordings", "verify")
    assert code == 0 and "проверено записей: 1" in out and "изменены после привязки: 0" in out
    assert "Unclosed" not in err  # the S3 session was closed
    monkeypatch.setenv("HOTLINE_S3_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    code, out, err = await hotline(settings, "recordings", "reconcile")
    assert code == 1 and "хранилище записей недоступно" in err and "Traceback" not in err
