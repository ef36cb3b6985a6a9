"""Path ids: the URL converters of id arguments, registered once on every app's URL map.

An id beyond its column's range can match nothing, so such a path is a 404 in routing, as for any
id that matches nothing, rather than a database error ("integer out of range"). Rules name the
converter of their column's type: ``/conversations/<id:conversation_id>``.
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

from webapp.models import BIGINT_MAX, INTEGER_MAX, max_id

__all__ = ["ID_CONVERTERS", "BigIdConverter", "IdConverter", "id_rule"]


class IdConverter(IntegerConverter):
    """An id of an INTEGER column: ASCII digits, 1 to ``INTEGER_MAX``."""

    def __init__(self, map: Map) -> None:
        """Bind the converter to its map with the INTEGER range."""
        super().__init__(map, min=1, max=INTEGER_MAX)


class BigIdConverter(IntegerConverter):
    """An id of a BIGINT column: ASCII digits, 1 to ``BIGINT_MAX``."""

    def __init__(self, map: Map) -> None:
        """Bind the converter to its map with the BIGINT range."""
        super().__init__(map, min=1, max=BIGINT_MAX)


ID_CONVERTERS: dict[str, type[IntegerConverter]] = {"id": IdConverter, "bigid": BigIdConverter}
"""Converter name to class, as ``create_app`` registers them."""


def id_rule(name: str, column: Any) -> str:
    """Return the URL rule placeholder of an id path argument, by its column's type.

    Args:
        name: The view argument (``user_id``).
        column: The column the id is looked up in (``User.id``).

    Returns:
        ``<id:user_id>`` for an INTEGER column, ``<bigid:reply_id>`` for a BIGINT one.
    """
    return f"<bigid:{name}>" if max_id(column) == BIGINT_MAX else f"<id:{name}>"
