"""A container's health check: `python -m chatsite.healthcheck` exits 0 when this host's
Chatsite answers GET /healthz with 200, else 1 (Dockerfile, compose.yaml).

It asks on 127.0.0.1:$API_PORT with the first of ALLOWED_HOSTS as its Host header: with
DEBUG=false, Django answers a host it does not serve with 400, and the operator's list
rarely names 127.0.0.1. /healthz is exempt from the HTTPS redirect.
"""

import http.client
import os
import sys


def probe_host() -> str:
    """The Host to ask as: the first allowed host (".example.com" allows example.com)."""
    first = os.environ.get("ALLOWED_HOSTS", "").split(",")[0].strip().lstrip(".")
    return first if first and first != "*" else "localhost"


def main() -> int:
    port = int(os.environ.get("API_PORT", "8000"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    try:
        connection.request("GET", "/healthz", headers={"Host": probe_host()})
        status = connection.getresponse().status
    except OSError as exc:
        print(f"Chatsite on port {port} did not answer: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"Chatsite on port {port} answered /healthz with {status}", file=sys.stderr)
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
