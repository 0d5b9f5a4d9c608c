"""HTTPS checked against certificate authorities of one's own: `CRAWLGRAPH_CA_BUNDLE`.

Scrapy verifies no certificate by default (``DOWNLOAD_VERIFY_CERTIFICATES =
False``), and crawlgraph keeps that default. When ``CRAWLGRAPH_CA_BUNDLE``
names a PEM file of CA certificates (a staging server's private CA, the
tests' `trustme` CA), every HTTPS download is verified: the chain against the
certificates of that file only (as curl's ``--cacert`` does: the system's CAs
are not trusted then), the certificate's name against the URL's host. A
connection that fails verification fails its download with a TLS error
(``OpenSSL.SSL.Error``, counted by Scrapy under
``downloader/exception_type_count/``). With a bundle, the TLS versions and
ciphers are Twisted's secure defaults (TLS 1.2 and up): Scrapy's
``DOWNLOAD_TLS_*`` and ``DOWNLOADER_CLIENT_TLS_*`` settings apply to the
unverified default only.

`CaBundleDownloadHandler` is Scrapy's HTTP/1.1 download handler with this
policy, the ``https`` entry of ``DOWNLOAD_HANDLERS`` in `crawler.settings`;
without a bundle it is Scrapy's handler unchanged. (Scrapy 2.19 deprecates
``DOWNLOADER_CLIENTCONTEXTFACTORY``, the setting this used to take, and
offers no other way to give the handler a trust root: the handler's
``_contextFactory`` attribute is replaced, checked at start.) Spiders that
render with scrapy-playwright use its handler instead, which does not read
the bundle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Self

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from core.errors import ConfigError

SETTING = "CRAWLGRAPH_CA_BUNDLE"
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@implementer(IPolicyForHTTPS)
class BundlePolicy:
    """Twisted TLS policy trusting the CA certificates of one bundle, and checking host names."""

    def __init__(self, certificates: list[Certificate]) -> None:
        if not certificates:
            raise ValueError("a bundle needs at least one certificate")
        self.certificates = certificates
        self._trust = trustRootFromCertificates(certificates)

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """The policy of a PEM file's certificates. Raises ConfigError naming the file."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{SETTING} {str(path)!r} cannot be read: {exc.strerror}.",
                              hint="Give the path of a PEM file of CA certificates.") from exc
        try:
            certificates = [Certificate.loadPEM(block) for block in _PEM.findall(data)]
        except Exception as exc:  # OpenSSL's errors have no common public base
            raise ConfigError(f"{SETTING} {str(path)!r} has a certificate that does not "
                              f"parse: {exc}.", hint="Give a PEM file of CA certificates.") \
                from exc
        if not certificates:
            raise ConfigError(f"{SETTING} {str(path)!r} holds no PEM certificate.",
                              hint="Give a PEM file with '-----BEGIN CERTIFICATE-----' blocks.")
        return cls(certificates)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        # SNI and the name check use the URL's host, whatever address it connects to.
        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trust)


class CaBundleDownloadHandler(HTTP11DownloadHandler):
    """Scrapy's HTTP/1.1 download handler, verifying HTTPS against ``CRAWLGRAPH_CA_BUNDLE``."""

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        path = crawler.settings.get(SETTING)
        if not path:
            return
        if not hasattr(self, "_contextFactory"):
            raise RuntimeError("HTTP11DownloadHandler no longer has _contextFactory: "
                               "crawler.tls needs updating for this Scrapy")
        self._contextFactory = BundlePolicy.from_file(path)
