"""TLS for the operator's `/metrics` and `/healthz` server, from a directory.

The directory holds `tls.crt` and `tls.key`, the keys of a `kubernetes.io/tls` Secret
(one that cert-manager keeps renewed, mounted as a volume). The pair is read again when
either file changes, checked on every request: OpenSSL copies the certificate into each
new connection, so connections opened after a renewal get the new one, without a restart.
A pair that fails to load is logged and the previous one kept.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


class ServingCertificate:
    """A server-side TLS context that follows the files it was loaded from."""

    def __init__(self, directory: Path) -> None:
        self._cert = directory / "tls.crt"
        self._key = directory / "tls.key"
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._loaded = self._stamp()
        self.context.load_cert_chain(self._cert, self._key)

    def _stamp(self) -> tuple[int, int]:
        return self._cert.stat().st_mtime_ns, self._key.stat().st_mtime_ns

    def refresh(self) -> None:
        """Load the pair again if either file changed since it was last loaded."""
        try:
            stamp = self._stamp()
            if stamp == self._loaded:
                return
            self.context.load_cert_chain(self._cert, self._key)
        except (OSError, ssl.SSLError) as error:
            log.warning("serving certificate not reloaded", extra={"error": str(error)})
            return
        self._loaded = stamp
        log.info("serving certificate reloaded", extra={"cert": str(self._cert)})
