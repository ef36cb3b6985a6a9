"""Choosing models: the catalogue's providers answer the very next reply, per conversation and
per user, with fallback chains, system prompts and per-user quotas.

Two instances of the fake OpenAI server: the module's usual one is the deployment's provider
(LLM_MODEL=chat-model, the managed ``environment`` provider), ``second`` is a provider stored
in the database as an admin change stores it (committed, then the catalogue version bumped).
The app is never rebuilt between a change and the reply that must see it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.assertions import assert_error
from tests.fakes.openai_server import FakeOpenAIServer, reply_text
from tests.integration.catalogue_support import add_model, add_provider, delete_provider, set_user
from tests.integration.generation_support import CONVERSATIONS, message_rows, messages_url
from tests.integration.test_openapi_served import Contract

pytestmark = pytest.mark.integration

MODELS = "/api/v1/chat/models"
PREFERENCES = "/api/v1/chat/preferences"
SECOND_KEY = "sk-second-provider-7f3a"


@pytest.fixture(scope="module")
def second_server() -> Iterator[FakeOpenAIServer]:
    """Another OpenAI-compatible server, for the provider stored in the database."""
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def second(second_server: FakeOpenAIServer) -> FakeOpenAIServer:
    second_server.reset()
    return second_server


def one(conversation_id: int) -> str:
    return f"{CONVERSATIONS}/{conversation_id}"


def create(client, tokens, status: int = 201, **body):
    response = client.post(CONVERSATIONS, json=body, headers=tokens.headers)
    assert response.status_code == status, response.get_json()
    return response


def ask(client, tokens, conversation_id: int, content: str = "Hello there") -> dict:
    response = client.post(
        messages_url(conversation_id), json={"content": content}, headers=tokens.headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["reply"]


def add_second(app, second: FakeOpenAIServer, **model_fields) -> int:
    provider_id = add_provider(
        app,
        "second",
        second.base_url,
        api_key=SECOND_KEY,
        extra_headers={"X-Tenant": "tenant-9"},
    )
    add_model(app, provider_id, "second-model", "upstream-two", **model_fields)
    return provider_id


def listed(client, tokens) -> list[str]:
    response = client.get(MODELS, headers=tokens.headers)
    assert response.status_code == 200, response.get_json()
    return [model["name"] for model in response.get_json()["models"]]


# --- a provider added or removed at runtime ---------------------------------------------------


def test_a_provider_stored_in_the_database_answers_the_very_next_reply(
    chat, alice, fake_openai, second
):
    app = chat()
    client = app.test_client()
    cid = create(client, alice).get_json()["conversation"]["id"]
    assert ask(client, alice, cid)["model"] == "chat-model"
    assert "second-model" not in listed(client, alice)

    add_second(app, second)
    assert "second-model" in listed(client, alice)
    patched = client.patch(one(cid), json={"model": "second-model"}, headers=alice.headers)
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["conversation"]["model"] == "second-model"
    reply = ask(client, alice, cid, "And now?")

    assert reply["model"] == "second-model"  # the catalogue's name, not the upstream id
    assert reply["content"] == reply_text("upstream-two", 8)
    (request,) = second.chat_requests()
    assert request.model == "upstream-two"
    assert request.headers["authorization"] == f"Bearer {SECOND_KEY}"
    assert request.headers["x-tenant"] == "tenant-9"
    assert len(fake_openai.chat_requests()) == 1  # the first reply only
    # The key was sealed in the database and is nowhere in what the API answers.
    for url in (MODELS, one(cid)):
        assert SECOND_KEY not in client.get(url, headers=alice.headers).get_data(as_text=True)


def test_removing_a_provider_makes_its_models_unavailable_at_once(chat, alice, fake_openai, second):
    app = chat()
    client = app.test_client()
    provider_id = add_second(app, second)
    cid = create(client, alice, model="second-model").get_json()["conversation"]["id"]
    assert ask(client, alice, cid)["model"] == "second-model"

    delete_provider(app, provider_id)

    assert "second-model" not in listed(client, alice)
    # The conversation keeps its choice, and answers with the default meanwhile.
    reply = ask(client, alice, cid, "Still there?")
    assert (reply["model"], reply["content"]) == ("chat-model", reply_text("chat-model", 8))
    assert len(second.chat_requests()) == 1
    # Choosing it explicitly is refused, naming the field.
    assert_error(create(client, alice, 400, model="second-model"), 400, "validation_error", "model")
    response = client.patch(one(cid), json={"model": "second-model"}, headers=alice.headers)
    assert_error(response, 400, "validation_error", "model")


def test_a_conversation_changes_its_model_between_messages_and_each_reply_records_its_own(
    chat, alice, fake_openai, second
):
    app = chat()
    client = app.test_client()
    add_second(app, second)
    cid = create(client, alice).get_json()["conversation"]["id"]

    ask(client, alice, cid, "one")
    client.patch(one(cid), json={"model": "second-model"}, headers=alice.headers)
    ask(client, alice, cid, "two")
    client.patch(one(cid), json={"model": None}, headers=alice.headers)
    ask(client, alice, cid, "three")

    assert [(row.role, row.model) for row in message_rows(app, cid)] == [
        ("user", None),
        ("assistant", "chat-model"),
        ("user", None),
        ("assistant", "second-model"),
        ("user", None),
        ("assistant", "chat-model"),
    ]
    # The second provider saw the whole conversation so far.
    sent = [m["content"] for m in second.chat_requests()[0].body["messages"]]
    assert sent == ["one", reply_text("chat-model", 8), "two"]
    detail = client.get(one(cid), headers=alice.headers).get_json()["conversation"]
    assert [m["model"] for m in detail["messages"]][1::2] == [
        "chat-model",
        "second-model",
        "chat-model",
    ]


def test_the_users_default_model_answers_conversations_that_choose_none(
    chat, alice, fake_openai, second
):
    app = chat()
    client = app.test_client()
    api = Contract("chat", client)
    add_second(app, second)
    assert api.call("get", PREFERENCES, 200, headers=alice.headers).get_json() == {
        "default_model": None
    }

    body = {"default_model": "second-model"}
    changed = api.call("patch", PREFERENCES, 200, json=body, headers=alice.headers).get_json()
    cid = create(client, alice).get_json()["conversation"]["id"]

    assert changed == body
    assert ask(client, alice, cid)["model"] == "second-model"
    # A conversation's own choice wins over the user's default.
    other = create(client, alice, model="chat-model").get_json()["conversation"]["id"]
    assert ask(client, alice, other)["model"] == "chat-model"
    for bad in ({"default_model": "nope"}, {"default_model": ""}, {}):
        response = client.patch(PREFERENCES, json=bad, headers=alice.headers)
        assert_error(response, 400, "validation_error", "default_model")
    api.call("patch", PREFERENCES, 200, json={"default_model": None}, headers=alice.headers)
    assert ask(client, alice, cid, "again?")["model"] == "chat-model"


def test_the_model_list_is_what_the_caller_may_use(chat, alice, auth, fake_openai, second):
    app = chat()
    client = app.test_client()
    api = Contract("chat", client)
    provider_id = add_provider(app, "second", second.base_url)
    add_model(app, provider_id, "admins-only", "upstream-a", allowed_roles=["admin"])
    add_model(app, provider_id, "switched-off", "upstream-b", enabled=False)
    add_model(
        app,
        provider_id,
        "described",
        "upstream-c",
        description="Good at maths.",
        context_window=8192,
        max_output_tokens=256,
    )
    root = auth.admin()

    body = api.call("get", MODELS, 200, headers=alice.headers).get_json()

    assert body["default"] == "chat-model"
    assert [m["name"] for m in body["models"]] == ["chat-model", "offline", "described"]
    described = body["models"][-1]
    assert described == {
        "name": "described",
        "display_name": "Described",
        "description": "Good at maths.",
        "context_window": 8192,
        "max_output_tokens": 256,
        "is_default": False,
    }
    assert "admins-only" in listed(client, root)
    assert_error(create(client, alice, 400, model="admins-only"), 400, "validation_error", "model")
    assert_error(create(client, alice, 400, model="switched-off"), 400, "validation_error", "model")
    assert create(client, root, model="admins-only").get_json()["conversation"]["model"] == (
        "admins-only"
    )


def test_a_stored_default_model_answers_everyone_without_a_choice(chat, alice, fake_openai, second):
    app = chat()
    client = app.test_client()
    cid = create(client, alice).get_json()["conversation"]["id"]

    add_second(app, second, is_default=True)

    assert client.get(MODELS, headers=alice.headers).get_json()["default"] == "second-model"
    assert ask(client, alice, cid)["model"] == "second-model"


# --- fallback chains --------------------------------------------------------------------------


def test_primary_provider_down_the_next_model_of_the_chain_answers_and_is_recorded(
    chat, alice, fake_openai, second, unused_port
):
    app = chat()
    client = app.test_client()
    down = add_provider(app, "down", f"http://127.0.0.1:{unused_port}/v1", timeout_seconds=5)
    up = add_provider(app, "up", second.base_url)
    second.configure("upstream-mid", mode="error500")
    add_model(app, up, "last", "upstream-last")
    add_model(app, up, "mid", "upstream-mid", fallback="last")
    add_model(app, down, "primary", "upstream-primary", fallback="mid")
    cid = create(client, alice, model="primary").get_json()["conversation"]["id"]

    reply = ask(client, alice, cid)

    assert (reply["model"], reply["fallback"], reply["status"]) == ("last", True, "complete")
    assert reply["content"] == reply_text("upstream-last", 8)
    assert [r.model for r in second.chat_requests()][-1] == "upstream-last"
    assert "upstream-mid" in [r.model for r in second.chat_requests()]
    assert message_rows(app, cid)[-1].model == "last"


# --- system prompt and temperature --------------------------------------------------------------


def test_the_system_prompt_and_temperature_reach_the_model(chat, alice, fake_openai, second):
    app = chat()
    client = app.test_client()
    add_second(app, second)
    cid = create(
        client, alice, model="second-model", system_prompt="Answer in French.", temperature=1.3
    ).get_json()["conversation"]
    assert (cid["system_prompt"], cid["temperature"]) == ("Answer in French.", 1.3)

    ask(client, alice, cid["id"], "Bonjour?")
    # The deployment's own model takes them too.
    client.patch(one(cid["id"]), json={"model": None}, headers=alice.headers)
    ask(client, alice, cid["id"], "Encore?")

    for request in (second.chat_requests()[-1], fake_openai.chat_requests()[-1]):
        messages = request.body["messages"]
        assert messages[0] == {"role": "system", "content": "Answer in French."}
        assert request.body["temperature"] == 1.3
    assert fake_openai.chat_requests()[-1].body["messages"][-1]["content"] == "Encore?"


def test_a_changed_system_prompt_is_not_answered_from_the_cache(chat, alice, fake_openai, second):
    app = chat()
    client = app.test_client()
    add_second(app, second)

    def reply_in_new_conversation(**settings) -> dict:
        cid = create(client, alice, model="second-model", **settings).get_json()["conversation"]
        return ask(client, alice, cid["id"], "Same question")

    assert reply_in_new_conversation()["cached"] is False
    again = reply_in_new_conversation()
    assert (again["cached"], again["model"]) == (True, "second-model")
    assert reply_in_new_conversation(system_prompt="Be brief.")["cached"] is False
    assert reply_in_new_conversation(temperature=0.1)["cached"] is False
    assert len(second.chat_requests()) == 3


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"model": ""}, "model"),
        ({"model": 7}, "model"),
        ({"model": "x" * 101}, "model"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"system_prompt": "x" * 4001}, "system_prompt"),
        ({"system_prompt": "a\x00b"}, "system_prompt"),
        ({"system_prompt": 3}, "system_prompt"),
    ],
)
def test_bad_model_settings_are_400_naming_the_field(chat, alice, body, field):
    app = chat()
    client = app.test_client()
    cid = create(client, alice).get_json()["conversation"]["id"]

    assert_error(create(client, alice, 400, **body), 400, "validation_error", field)
    response = client.patch(one(cid), json=body, headers=alice.headers)
    assert_error(response, 400, "validation_error", field)
    stored = client.get(one(cid), headers=alice.headers).get_json()["conversation"]
    assert (stored["model"], stored["system_prompt"], stored["temperature"]) == (None, None, None)


def test_model_settings_are_changed_alone_and_cleared_with_null(chat, alice):
    app = chat()
    client = app.test_client()
    api = Contract("chat", client)
    created = api.call(
        "post",
        CONVERSATIONS,
        201,
        json={"title": "Kept", "model": "offline", "system_prompt": "Hi", "temperature": 0},
        headers=alice.headers,
    ).get_json()["conversation"]
    url = one(created["id"])
    path = CONVERSATIONS + "/{conversation_id}"

    changed = api.call(
        "patch", path, 200, url=url, json={"temperature": 2}, headers=alice.headers
    ).get_json()["conversation"]
    assert (changed["title"], changed["model"], changed["temperature"]) == ("Kept", "offline", 2)
    cleared = api.call(
        "patch",
        path,
        200,
        url=url,
        json={"model": None, "system_prompt": None, "temperature": None},
        headers=alice.headers,
    ).get_json()["conversation"]
    assert (cleared["model"], cleared["system_prompt"], cleared["temperature"]) == (
        None,
        None,
        None,
    )
    assert cleared["updated_at"] == created["updated_at"]  # settings are not activity
    api.call("get", path, 200, url=url, headers=alice.headers)
    assert_error(
        client.patch(url, json={}, headers=alice.headers), 400, "validation_error", "title"
    )


# --- the per-user daily quota -----------------------------------------------------------------


def test_a_users_own_quota_overrides_the_global_one(chat, alice, auth, fake_openai):
    app = chat(LLM_DAILY_TOKEN_QUOTA="1000000")
    client = app.test_client()
    bob = auth.signup("bob@example.com")
    set_user(app, alice.user["id"], daily_token_quota=5)
    cid = create(client, alice).get_json()["conversation"]["id"]
    ask(client, alice, cid)  # 2 tokens in, 8 out: over 5

    response = client.post(messages_url(cid), json={"content": "more"}, headers=alice.headers)

    error = assert_error(response, 429, "quota_exceeded")
    assert (error["limit"], error["used"]) == (5, 10)
    # Bob has the global quota.
    bob_cid = create(client, bob).get_json()["conversation"]["id"]
    ask(client, bob, bob_cid)
    ask(client, bob, bob_cid, "more")


def test_a_users_quota_of_zero_is_no_quota(chat, alice, fake_openai):
    app = chat(LLM_DAILY_TOKEN_QUOTA="1")
    client = app.test_client()
    set_user(app, alice.user["id"], daily_token_quota=0)
    cid = create(client, alice).get_json()["conversation"]["id"]

    for content in ("one", "two", "three"):
        ask(client, alice, cid, content)


def test_models_and_preferences_need_a_user_and_are_each_users_own(chat, alice, auth):
    app = chat()
    client = app.test_client()
    bob = auth.signup("bob@example.com")
    for method, url in (("get", MODELS), ("get", PREFERENCES), ("patch", PREFERENCES)):
        response = client.open(url, method=method.upper(), json={"default_model": None})
        assert_error(response, 401, "unauthorized")

    client.patch(PREFERENCES, json={"default_model": "offline"}, headers=alice.headers)

    assert client.get(PREFERENCES, headers=bob.headers).get_json() == {"default_model": None}
    assert client.get(PREFERENCES, headers=alice.headers).get_json() == {"default_model": "offline"}


def test_a_regenerated_reply_answers_with_the_conversations_model_now(
    chat, alice, fake_openai, second
):
    app = chat()
    client = app.test_client()
    add_second(app, second)
    cid = create(client, alice).get_json()["conversation"]["id"]
    assert ask(client, alice, cid)["model"] == "chat-model"
    client.patch(one(cid), json={"model": "second-model"}, headers=alice.headers)

    response = client.post(f"{one(cid)}/regenerate", headers=alice.headers)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["reply"]["model"] == "second-model"
    assert [row.model for row in message_rows(app, cid)] == [None, "second-model"]


def test_with_redis_down_models_are_listed_and_chosen_from_the_database(
    make_app, alice, unused_port
):
    client = make_app("all", REDIS_URL=f"redis://127.0.0.1:{unused_port}/0").test_client()

    assert listed(client, alice) == ["offline"]
    cid = create(client, alice, model="offline").get_json()["conversation"]["id"]
    assert_error(create(client, alice, 400, model="nope"), 400, "validation_error", "model")
    # A reply needs Redis (its stream, its lease, the catalogue version): 503, nothing stored.
    response = client.post(messages_url(cid), json={"content": "hi"}, headers=alice.headers)
    assert_error(response, 503, "service_unavailable")
