"""The webhook routes answer as the admin service's OpenAPI document says."""

from __future__ import annotations

import pytest

from tests.integration.test_openapi_served import Contract

pytestmark = pytest.mark.integration

SECRET = "webhook-contract-secret-0123456789abcdef"
HOOKS = "/api/v1/admin/webhooks"
HOOK = f"{HOOKS}/{{webhook_id}}"
DELIVERY = f"{HOOK}/deliveries/{{delivery_id}}"


def test_webhook_responses_match_the_document(app, make_app, auth):
    hooks = make_app("all", WEBHOOK_SECRET=SECRET, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    api = Contract("admin", hooks.test_client())
    admin = auth.admin()
    user = auth.signup("alice@example.com")
    headers = admin.headers
    body = {"url": "http://127.0.0.1:9/hook", "events": ["user.registered"]}

    api.call("get", HOOKS, 401)
    api.call("get", HOOKS, 403, headers=user.headers)
    api.call("post", HOOKS, 400, json={**body, "url": "http://10.0.0.1/"}, headers=headers)
    api.call("post", HOOKS, 415, data="{}", headers=headers)
    hook = api.call("post", HOOKS, 201, json=body, headers=headers).get_json()["webhook"]
    url = f"{HOOKS}/{hook['id']}"
    api.call("get", HOOKS, 200, headers=headers)
    api.call("get", HOOK, 200, url=url, headers=headers)
    api.call("get", HOOK, 404, url=f"{HOOKS}/999999", headers=headers)
    api.call("patch", HOOK, 200, url=url, json={"description": "CRM"}, headers=headers)
    api.call("patch", HOOK, 400, url=url, json={"events": []}, headers=headers)
    ping = api.call("post", f"{HOOK}/test", 202, url=f"{url}/test", headers=headers)
    delivery_id = ping.get_json()["delivery"]["id"]
    auth.register("bob@example.com")
    api.call("get", f"{HOOK}/deliveries", 200, url=f"{url}/deliveries", headers=headers)
    api.call("get", f"{HOOK}/deliveries", 400, url=f"{url}/deliveries?status=lost", headers=headers)
    one = f"{url}/deliveries/{delivery_id}"
    api.call("get", DELIVERY, 200, url=one, headers=headers)
    api.call("post", f"{DELIVERY}/redeliver", 409, url=f"{one}/redeliver", headers=headers)
    api.call("delete", HOOK, 204, url=url, headers=headers)
    api.call("get", DELIVERY, 404, url=one, headers=headers)
