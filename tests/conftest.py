"""Shared fixtures: an isolated data environment and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def isolated_data_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory):
    """Never look in (or write to) ~/.cache or a developer's $NRF_DATA_DIR.

    Tests marked ``realdata`` keep ``$NRF_DATA_DIR`` (that is where the real files are).
    Returns the cache folder ``$XDG_CACHE_HOME/nrf``.
    """
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    if request.node.get_closest_marker("realdata") is None:
        monkeypatch.delenv("NRF_DATA_DIR", raising=False)
    return cache / "nrf"


@dataclass
class LocalServer:
    """A folder served over HTTP on 127.0.0.1; ``requests`` lists every path asked for."""

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)

    def put(self, name: str, content: bytes) -> str:
        """Write ``content`` under ``name`` in the served folder and return its URL."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return f"{self.url}/{name}"


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """Serve ``tmp_path / "served"`` on an ephemeral port; shut down at teardown."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield LocalServer(url=f"http://{host}:{port}", root=served, requests=requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
