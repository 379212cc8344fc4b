"""GETs to the operator's own server (/metrics, /healthz), with or without a token."""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request


def get(
    url: str, *, token: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, str]:
    """The status and body of GET `url`; `token` is sent as `Authorization: Bearer`.

    Status 0 when no HTTP answer comes (the server is not listening yet, its certificate
    is not trusted by `context`, or it speaks TLS to a plain request), so callers can poll.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status), str(response.read().decode())
    except urllib.error.HTTPError as error:
        return int(error.code), str(error.read().decode())
    except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
        return 0, str(error)
