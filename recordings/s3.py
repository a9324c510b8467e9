"""Recordings in an S3-compatible object store (MinIO, AWS S3), spoken to over aiohttp.

Path-style addressing (``ENDPOINT/BUCKET/KEY``) works with MinIO out of the box; the key of a
recording is ``prefix + relative path`` as stored at intake. Requests are signed with AWS
Signature Version 4 by the small signer below (four calls do not justify boto3 as a
dependency). Every request has an empty body, so the payload hash is the empty-string hash.

A store that answers 5xx, refuses the connection, times out or rejects our credentials raises
:class:`~recordings.storage.StorageUnavailable`; a missing object is ``None`` (stat) or
``FileNotFoundError`` (read), as on local disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import aiohttp
from yarl import URL

from recordings.storage import CHUNK_BYTES, StorageUnavailable, StoredFile

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ALGORITHM = "AWS4-HMAC-SHA256"
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


# ---------------------------------------------------------------------- SigV4 signing
def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 percent-encoding as SigV4 wants it: only ``A-Za-z0-9-._~`` stay (and ``/``
    in a path)."""
    return quote(text, safe="/~" if keep_slash else "~")


def canonical_query(params: Mapping[str, str]) -> str:
    """``k=v&…`` sorted by encoded name, both sides encoded (also used as the real query)."""
    pairs = sorted((uri_encode(name), uri_encode(value)) for name, value in params.items())
    return "&".join(f"{name}={value}" for name, value in pairs)


class SigV4Signer:
    """Signs requests with AWS Signature Version 4 (``Authorization`` header form)."""

    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1",
                 service: str = "s3") -> None:
        self.access_key = access_key
        self._secret = secret_key
        self.region = region
        self.service = service

    def sign(self, method: str, path: str, query: str, headers: Mapping[str, str], *,
             payload_hash: str, now: datetime) -> dict[str, str]:
        """The headers to send: ``headers`` (which must hold ``host``) plus ``x-amz-date``,
        ``x-amz-content-sha256`` and ``authorization``. ``path`` is URI-encoded and ``query``
        canonical (:func:`canonical_query`): both are sent exactly as signed."""
        amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
        signed["x-amz-date"] = amz_date
        signed["x-amz-content-sha256"] = payload_hash
        names = ";".join(sorted(signed))
        scope = f"{amz_date[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join((_ALGORITHM, amz_date, scope, _sha256_hex(
            canonical_request(method, path, query, signed, payload_hash))))
        signature = hmac.new(self._signing_key(amz_date[:8]), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        signed["authorization"] = (f"{_ALGORITHM} Credential={self.access_key}/{scope},"
                                   f"SignedHeaders={names},Signature={signature}")
        return signed

    def _signing_key(self, day: str) -> bytes:
        key = f"AWS4{self._secret}".encode()
        for part in (day, self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return key


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str],
                      payload_hash: str) -> str:
    """The canonical request of SigV4; ``headers`` have lower-case names and trimmed values."""
    names = sorted(headers)
    lines = [f"{name}:{headers[name]}" for name in names]
    return "\n".join((method, path, query, *lines, "", ";".join(names), payload_hash))


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------- keys
def object_key(prefix: str, relative: str) -> str:
    """``prefix + relative``; ValueError for anything but a plain relative path (no ``..`` or
    ``.`` segments, no leading ``/``, no backslash, no NUL): no key tricks, even from our DB."""
    if not relative or "\\" in relative or "\x00" in relative or relative.startswith("/"):
        raise ValueError(f"unsafe recording key: {relative!r}")
    if any(part in ("", ".", "..") for part in relative.split("/")):
        raise ValueError(f"unsafe recording key: {relative!r}")
    return prefix + relative


def normalize_prefix(prefix: str) -> str:
    """``"a/b"``, ``"/a/b/"`` → ``"a/b/"`` (a folder inside the bucket); ``""`` stays."""
    stripped = prefix.strip("/")
    return object_key("", stripped) + "/" if stripped else ""


# ---------------------------------------------------------------------- the storage
class S3Storage:
    """Recordings as objects ``prefix + relative path`` in one bucket."""

    def __init__(self, endpoint: str, bucket: str, *, access_key: str, secret_key: str,
                 region: str = "us-east-1", prefix: str = "", timeout_s: float = 30.0,
                 page_size: int = 1000,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"S3 endpoint must be http(s)://HOST[:PORT], got {endpoint!r}")
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.page_size = page_size
        self._host = parts.netloc  # sent and signed as is
        self._signer = SigV4Signer(access_key, secret_key, region)
        self._clock = clock
        # No overall deadline: a long recording may stream for minutes; only silence counts.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s,
                                              sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"S3Storage({self.endpoint}/{self.bucket}/{self.prefix})"

    # ------------------------------------------------------------------ protocol
    async def stat(self, relative: str) -> StoredFile | None:
        """HEAD object: size and Last-Modified; None when absent (or the key is refused)."""
        try:
            key = object_key(self.prefix, relative)
        except ValueError:
            return None
        async with self._request("HEAD", key) as response:
            if response.status == 404:
                return None
            await self._expect(response, 200)
            size = int(response.headers.get("Content-Length", "0"))
            return StoredFile(relative, size, _mtime_ns(response.headers.get("Last-Modified")))

    async def read_range(self, stored: StoredFile, start: int,
                         count: int) -> AsyncIterator[bytes]:
        """GET with ``Range``, streamed in chunks (never the whole object in memory)."""
        if count <= 0:
            return
        key = object_key(self.prefix, stored.key)
        byte_range = f"bytes={start}-{start + count - 1}"
        async with self._request("GET", key, headers={"range": byte_range}) as response:
            if response.status == 404:
                raise FileNotFoundError(stored.key)
            if response.status == 200 and start:
                raise StorageUnavailable(f"{self}: the store ignored Range for {key}")
            await self._expect(response, 200, 206)
            left = count
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                piece = chunk[:left]  # a 200 answer carries the whole object
                left -= len(piece)
                yield piece
                if left <= 0:
                    return

    async def delete(self, stored: StoredFile) -> None:
        """DELETE object (an absent object is not an error: S3 answers 204 anyway)."""
        key = object_key(self.prefix, stored.key)
        async with self._request("DELETE", key) as response:
            await self._expect(response, 200, 204, 404)

    async def list_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Relative paths of the objects under ``prefix`` (ListObjectsV2, page by page)."""
        if prefix.rstrip("/"):
            object_key("", prefix.rstrip("/"))  # the rules of a key; a folder may end in /
        base = self.prefix + prefix
        token: str | None = None
        while True:
            params = {"list-type": "2", "prefix": base, "max-keys": str(self.page_size)}
            if token is not None:
                params["continuation-token"] = token
            async with self._request("GET", None, query=canonical_query(params)) as response:
                await self._expect(response, 200)
                keys, token = _parse_listing(await response.read())
            for key in keys:
                if key.startswith(self.prefix):
                    yield key[len(self.prefix):]
            if token is None:
                return

    async def aclose(self) -> None:
        """Close the shared HTTP session (service stop, end of a CLI command)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ HTTP
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Stored bytes exactly as stored: never decompress.
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        return self._session

    @contextlib.asynccontextmanager
    async def _request(self, method: str, key: str | None, *, query: str = "",
                       headers: Mapping[str, str] | None = None,
                       ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A signed request on the object ``key`` (None: the bucket); transport failures and
        5xx answers become StorageUnavailable, also while the body is being read."""
        path = f"/{uri_encode(self.bucket)}" + (f"/{uri_encode(key, keep_slash=True)}"
                                                if key is not None else "")
        signed = self._signer.sign(method, path, query, {"host": self._host, **(headers or {})},
                                   payload_hash=EMPTY_SHA256, now=self._clock())
        url = URL(self.endpoint + path + (f"?{query}" if query else ""), encoded=True)
        try:
            async with self._client().request(method, url, headers=signed,
                                               allow_redirects=False) as response:
                if response.status >= 500:
                    raise StorageUnavailable(await self._describe(response))
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageUnavailable(f"{self}: {method} {key or ''}: "
                                     f"{type(exc).__name__}: {exc}") from exc

    async def _expect(self, response: aiohttp.ClientResponse, *statuses: int) -> None:
        if response.status not in statuses:
            # 403 (bad keys, clock skew), 404 NoSuchBucket, …: not usable as configured.
            raise StorageUnavailable(await self._describe(response))

    async def _describe(self, response: aiohttp.ClientResponse) -> str:
        code = _ERROR_CODE.search(await response.content.read(4096))
        reason = code.group(1).decode(errors="replace") if code else response.reason
        return (f"{self}: {response.method} {response.url.path}: "
                f"HTTP {response.status} {reason}")


def _mtime_ns(header: str | None) -> int:
    if not header:
        return 0
    try:
        return int(parsedate_to_datetime(header).timestamp()) * 1_000_000_000
    except (TypeError, ValueError):
        return 0


def _parse_listing(body: bytes) -> tuple[list[str], str | None]:
    """(keys, next continuation token or None) of a ListObjectsV2 answer."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise StorageUnavailable(f"not a ListObjectsV2 answer: {exc}") from exc
    keys: list[str] = []
    truncated, token = False, None
    for element in root.iter():
        tag = element.tag.rpartition("}")[2]  # namespace-agnostic
        if tag == "Key":
            keys.append(element.text or "")
        elif tag == "IsTruncated":
            truncated = (element.text or "").strip() == "true"
        elif tag == "NextContinuationToken":
            token = element.text
    return keys, token if truncated else None
