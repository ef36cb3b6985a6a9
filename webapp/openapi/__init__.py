"""OpenAPI 3.1 documents of the services, and the offline documentation pages that render them."""

from webapp.openapi.documents import (
    DOCUMENTED_SERVICES,
    DOCUMENTS,
    OPENAI_DOCUMENT,
    build_document,
    documents_of,
)
from webapp.openapi.views import ASSET_ENDPOINT, register_api_docs

__all__ = [
    "ASSET_ENDPOINT",
    "DOCUMENTED_SERVICES",
    "DOCUMENTS",
    "OPENAI_DOCUMENT",
    "build_document",
    "documents_of",
    "register_api_docs",
]
