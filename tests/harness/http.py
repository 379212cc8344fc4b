"""Plain HTTP GETs to the operator's own server (/metrics, /healthz), with or without a token."""

from __future__ import annotations

import urllib.error
import urllib.request


def get(url: str, *, token: str | None = None) -> tuple[int, str]:
    """The status and body of GET `url`; `token` is sent as `Authorization: Bearer`.

    Status 0 when nothing answers (the server is not listening yet), so callers can poll.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), str(response.read().decode())
    except urllib.error.HTTPError as error:
        return int(error.code), str(error.read().decode())
    except urllib.error.URLError as error:
        return 0, str(error.reason)
