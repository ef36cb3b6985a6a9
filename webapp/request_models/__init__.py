"""Request models: one pydantic model per operation's JSON body or query string.

The models hold every rule a request must meet before a service sees it (known fields, types,
lengths, ranges), in one place: views parse with them (:func:`accepts`), and the OpenAPI
documents are generated from them (:mod:`webapp.openapi.from_models`). Views declare theirs
with :func:`webapp.request_models.parsing.accepts`.
"""
