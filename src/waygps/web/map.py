"""The live map page (``/`` and ``/map``) and the static files under ``/static/``.

The page is one HTML file with plain JavaScript (``static/map.html``,
``static/map.js``, ``static/map.css``) and Leaflet vendored from its npm
package (``static/vendor/leaflet/``), so it works without internet access.
What the page needs from the configuration (tile URL and attribution, the
WebSocket path) is written into it as JSON when it is served. The token is
not: the page reads it from the URL fragment (``/#token=...``), which a
browser never sends, so it never reaches an access log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.static import File

from waygps.config import MapConfig

STATIC = Path(__file__).with_name("static")
_MARK = "<!--WAYGPS_CONFIG-->"


def page_config(map_config: MapConfig, websocket_path: str) -> dict[str, Any]:
    return {"tiles": map_config.tiles, "attribution": map_config.attribution, "maxZoom": map_config.max_zoom,
            "wsPath": websocket_path}


def render_page(template: str, config: dict[str, Any]) -> bytes:
    # "</" cannot close the script element from inside a JSON string.
    data = json.dumps(config).replace("</", "<\\/")
    block = f'<script id="waygps-config" type="application/json">{data}</script>'
    return template.replace(_MARK, block, 1).encode("utf-8")


class MapPage(Resource):
    isLeaf = True

    def __init__(self, map_config: MapConfig, websocket_path: str, template: Path = STATIC / "map.html") -> None:
        super().__init__()
        self.body = render_page(template.read_text(encoding="utf-8"), page_config(map_config, websocket_path))

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return self.body


class StaticFiles(File):
    """``/static/``: the page's files; no directory listings."""

    def directoryListing(self) -> Resource:  # type: ignore[override]
        return notFound()


def static_files() -> StaticFiles:
    files = StaticFiles(str(STATIC))
    files.contentTypes = dict(files.contentTypes, **{".js": "text/javascript; charset=utf-8",
                                                   ".css": "text/css; charset=utf-8"})
    return files
