"""Real responses of every admin route (webhooks aside) match the admin OpenAPI document."""

from __future__ import annotations

import pytest

from tests.integration.generation_support import messages_url, new_conversation
from tests.integration.test_openapi_served import Contract

pytestmark = pytest.mark.integration

USER = "/api/v1/admin/users/{user_id}"


def test_admin_responses_match_the_document(client, auth, alice):
    api = Contract("admin", client)
    admin = auth.admin()
    bob = auth.signup("bob@example.com")
    headers = admin.headers
    cid = new_conversation(client, alice)
    client.post(messages_url(cid), json={"content": "Hello"}, headers=alice.headers)
    client.post("/api/v1/auth/login", json={"email": "alice@example.com", "password": "wrong!"})

    api.call("get", "/api/v1/admin/status", 200, headers=headers)
    api.call("get", "/api/v1/admin/usage", 200, headers=headers)
    api.call("get", "/api/v1/admin/usage", 200, url="/api/v1/admin/usage?top=1", headers=headers)
    api.call("get", "/api/v1/admin/usage", 400, url="/api/v1/admin/usage?since=x", headers=headers)
    api.call("get", "/api/v1/admin/usage", 403, headers=alice.headers)
    api.call("get", "/api/v1/admin/audit", 200, headers=headers)
    api.call("get", "/api/v1/admin/audit", 400, url="/api/v1/admin/audit?limit=0", headers=headers)
    api.call("get", "/api/v1/admin/users", 200, headers=headers)
    api.call("get", "/api/v1/admin/users", 200, url="/api/v1/admin/users?limit=1", headers=headers)
    api.call("get", "/api/v1/admin/users", 400, url="/api/v1/admin/users?role=x", headers=headers)
    api.call("get", "/api/v1/admin/users", 401)

    alice_url = f"/api/v1/admin/users/{alice.user['id']}"
    api.call("get", USER, 200, url=alice_url, headers=headers)
    api.call("get", USER, 404, url="/api/v1/admin/users/999999", headers=headers)
    api.call("patch", USER, 200, url=alice_url, json={"role": "admin"}, headers=headers)
    api.call("patch", USER, 400, url=alice_url, json={"role": "x"}, headers=headers)
    api.call("patch", USER, 415, url=alice_url, data="role=admin", headers=headers)
    api.call("patch", USER, 200, url=alice_url, json={"role": "user"}, headers=headers)
    admin_url = f"/api/v1/admin/users/{admin.user['id']}"
    api.call("patch", USER, 409, url=admin_url, json={"role": "user"}, headers=headers)

    api.call("get", f"{USER}/conversations", 200, url=f"{alice_url}/conversations", headers=headers)
    api.call(
        "get",
        f"{USER}/conversations",
        400,
        url=f"{alice_url}/conversations?limit=0",
        headers=headers,
    )
    one = f"{USER}/conversations/{{conversation_id}}"
    api.call("get", one, 200, url=f"{alice_url}/conversations/{cid}", headers=headers)
    api.call("get", one, 404, url=f"{alice_url}/conversations/{cid + 1}", headers=headers)

    password = f"{USER}/password"
    api.call("post", password, 200, url=f"{alice_url}/password", headers=headers)
    api.call(
        "post",
        password,
        200,
        url=f"{alice_url}/password",
        json={"password": "another Passphrase 9"},
        headers=headers,
    )
    api.call(
        "post", password, 400, url=f"{alice_url}/password", json={"password": 1}, headers=headers
    )

    bob_url = f"/api/v1/admin/users/{bob.user['id']}"
    api.call("delete", USER, 200, url=bob_url, headers=headers)
    api.call("delete", USER, 404, url=bob_url, headers=headers)
    api.call("delete", USER, 409, url=admin_url, headers=headers)
