"""HTTPS in rendered pages checked against `CRAWLGRAPH_CA_BUNDLE`, as the downloader checks it.

Chromium cannot be told to trust a CA bundle for one crawl: it has no such
switch, and ``--ignore-certificate-errors-spki-list`` with the bundle's keys
would be unsound (Chromium then skips every check for any chain that merely
*contains* a certificate with such a key, and a CA certificate is public:
any server could send it along). So with a bundle, the render proxy
(`crawler.renderproxy`) is the TLS client that verifies, the way
`crawler.tls` does for plain fetches: the chain against the bundle's
certificates only (curl's ``--cacert``), the name against the URL's host,
TLS 1.2 and up. Towards Chromium it speaks TLS with a key made for this
crawl, in memory, never written anywhere; Chromium accepts that one key
only (``--ignore-certificate-errors-spki-list`` with its SPKI hash), so only
this proxy can answer for an HTTPS host, and nothing it has not verified
upstream reaches the page. Both legs speak HTTP/1.1 (ALPN), so the proxy
relays bytes without reading them.

Without a bundle nothing of this runs: TLS stays end to end, and Chromium
checks certificates against its own roots.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crawler.tls import BundlePolicy

_CHUNK = 64 * 1024
_ALPN = ["http/1.1"]
TLS_RECORD = 0x16  # the first byte of a TLS handshake record


class TlsBridge:
    """The bundle's client context upstream, and this crawl's key towards Chromium."""

    def __init__(self, bundle: str | Path) -> None:
        # Those certificates only that plain fetches trust (and their ConfigError for a bad file).
        certificates = BundlePolicy.from_file(bundle).certificates
        self.client = ssl.create_default_context(
            cadata="".join(c.dumpPEM().decode("ascii") for c in certificates))
        self.client.minimum_version = ssl.TLSVersion.TLSv1_2
        self.client.set_alpn_protocols(_ALPN)
        key = ec.generate_private_key(ec.SECP256R1())
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        self.spki_hash = base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")
        self.server = _server_context(key)

    def chromium_switches(self) -> list[str]:
        """Chromium accepts the proxy's key, and no other certificate error."""
        return [f"--ignore-certificate-errors-spki-list={self.spki_hash}"]


def _server_context(key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crawlgraph render guard")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(_ALPN)
    # load_cert_chain reads files only: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="crawlgraph-render-") as tmp:
        path = Path(tmp, "key.pem")
        path.touch(mode=0o600)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
                         + cert.public_bytes(serialization.Encoding.PEM))
        context.load_cert_chain(path)
    return context


class ServerSide:
    """TLS towards Chromium over an accepted stream, the ClientHello's first bytes read already."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 context: ssl.SSLContext, first: bytes) -> None:
        self._reader, self._writer = reader, writer
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._incoming.write(first)
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    async def handshake(self) -> None:
        await self._step(self._tls.do_handshake)

    async def read(self, size: int = _CHUNK) -> bytes:
        """Decrypted bytes from Chromium; b"" at the end."""
        try:
            return await self._step(lambda: self._tls.read(size))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    async def write(self, data: bytes) -> None:
        self._tls.write(data)
        await self._flush()

    async def _step(self, operation):  # type: ignore[no-untyped-def]
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._reader.read(_CHUNK)
                if not data:
                    self._incoming.write_eof()
                else:
                    self._incoming.write(data)
                continue
            await self._flush()
            return result

    async def _flush(self) -> None:
        if data := self._outgoing.read():
            self._writer.write(data)
            await self._writer.drain()
