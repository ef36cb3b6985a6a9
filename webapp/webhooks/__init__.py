"""Webhooks outside the request path: signing, the address guard and the delivery worker.

Events are queued as rows of ``webhook_deliveries`` in the transaction of the event itself
(:func:`webapp.services.webhooks.emit`); the worker (``chatbot webhooks run``, its own systemd
unit) claims due rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and POSTs them. See
docs/webhooks.md.
"""
