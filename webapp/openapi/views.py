"""Serve each service's OpenAPI document and a documentation page that needs no network.

For service ``X`` (under the prefix the public proxy routes to it):

- ``GET /api/v1/X/openapi.json``: the document;
- ``GET /api/v1/X/docs``: Swagger UI rendering it;
- ``GET /api/v1/X/docs/assets/<name>``: the page's scripts and styles.

Swagger UI's files come from the ``flask-swagger-ui`` package (Swagger UI's ``dist`` files,
Apache-2.0), installed with the app like any dependency, so nothing is fetched from a CDN; only
its files are used, not its blueprint, whose page carries an inline script the site's
Content-Security-Policy refuses.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import json
from pathlib import Path

from flask import Blueprint, Flask, Response, request, send_from_directory, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as WerkzeugResponse

from webapp.openapi.documents import api_prefix, build_document, documents_of

__all__ = ["ASSET_ENDPOINT", "DOCS_CSP", "create_docs_blueprint", "register_api_docs"]

ASSET_ENDPOINT = "asset"
"""Endpoint (within each docs blueprint) of the page's assets; not in the OpenAPI documents."""

# The same policy as the public site's (nginx replaces this header with its own): scripts,
# styles and data from this origin only, so the page cannot reach any other host.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
    " form-action 'none'; frame-ancestors 'none'"
)
# Assets are requested with ?v=<version of the app and of Swagger UI>, so a day of caching can
# never serve an old file with a new page.
_ASSET_MAX_AGE = 24 * 3600
_OWN_ASSETS = Path(__file__).resolve().parent.parent / "static" / "docs"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{swagger_css}">
<link rel="stylesheet" href="{docs_css}">
</head>
<body>
<noscript><p class="docs-noscript">This page needs JavaScript. The API description itself is
<a href="{document}">{document}</a>.</p></noscript>
<div id="swagger-ui" data-openapi-url="{document}"></div>
<script src="{swagger_js}"></script>
<script src="{docs_js}"></script>
</body>
</html>
"""


@functools.cache
def _swagger_ui_dir() -> Path:
    # Imported only when docs are served: the package's module imports nothing heavy, but the
    # location of its files is all that is needed.
    return Path(str(importlib.resources.files("flask_swagger_ui") / "dist"))


@functools.cache
def _assets() -> dict[str, Path]:
    """Return every asset the page may load, by the name it is served under."""
    swagger = _swagger_ui_dir()
    return {
        "swagger-ui-bundle.js": swagger,
        "swagger-ui.css": swagger,
        # Swagger UI's licence travels with its files (Apache-2.0, section 4).
        "LICENSE": swagger,
        "docs.js": _OWN_ASSETS,
        "docs.css": _OWN_ASSETS,
    }


@functools.cache
def _assets_version() -> str:
    from webapp import __version__

    swagger = (_swagger_ui_dir() / "VERSION").read_text(encoding="utf-8").strip()
    return f"{__version__}-{swagger.removeprefix('v')}"


@functools.cache
def _document_json(service: str) -> bytes:
    # Serialised once, keeping the documents' order (paths as written, not sorted).
    return json.dumps(build_document(service), ensure_ascii=False, indent=1).encode()


def create_docs_blueprint(service: str) -> Blueprint:
    """Create the blueprint serving one document, its docs page and assets.

    Args:
        service: One of ``DOCUMENTS``: a service's document, or ``openai``.

    Returns:
        A blueprint named ``openapi_<service>`` under the document's API prefix
        (``/api/v1/<service>``, ``/v1``).
    """
    bp = Blueprint(f"openapi_{service}", __name__, url_prefix=api_prefix(service))

    @bp.get("/openapi.json")
    def document() -> WerkzeugResponse:
        response = Response(_document_json(service), mimetype="application/json")
        # Revalidated on every use (it changes with each release), cheaply thanks to the ETag.
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        return response.make_conditional(request)

    @bp.get("/docs")
    def docs() -> Response:
        def asset(name: str) -> str:
            return url_for(f".{ASSET_ENDPOINT}", name=name, v=_assets_version())

        page = _PAGE.format(
            title=html.escape(build_document(service)["info"]["title"]),
            document=html.escape(url_for(".document")),
            swagger_css=html.escape(asset("swagger-ui.css")),
            docs_css=html.escape(asset("docs.css")),
            swagger_js=html.escape(asset("swagger-ui-bundle.js")),
            docs_js=html.escape(asset("docs.js")),
        )
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCS_CSP
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/docs/assets/<name>", endpoint=ASSET_ENDPOINT)
    def asset_file(name: str) -> Response:
        # Only the listed files: the directories hold others (source maps, an OAuth page) the
        # page does not use.
        directory = _assets().get(name)
        if directory is None:
            raise NotFound("No such documentation asset.")
        mimetype = "text/plain" if name == "LICENSE" else None
        return send_from_directory(directory, name, max_age=_ASSET_MAX_AGE, mimetype=mimetype)

    return bp


def register_api_docs(app: Flask, service: str) -> None:
    """Serve the OpenAPI document and docs page of each API ``app`` runs.

    Args:
        app: The application.
        service: The app's service (chat serves the OpenAI-compatible API's document too);
            "all" serves every document.
    """
    for name in documents_of(service):
        app.register_blueprint(create_docs_blueprint(name))
