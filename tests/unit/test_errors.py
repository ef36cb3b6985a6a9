"""Every error leaves the app in one JSON shape."""

from __future__ import annotations

import pytest
from flask import Flask, abort

from tests.assertions import assert_error
from webapp.error_handlers import register_error_handlers
from webapp.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UpstreamError,
    ValidationError,
    error_body,
    http_error_code,
)


def test_error_body_has_code_message_and_optional_field():
    assert error_body("not_found", "Nope.") == {"error": {"code": "not_found", "message": "Nope."}}
    assert error_body("validation_error", "bad", "email") == {
        "error": {"code": "validation_error", "message": "bad", "field": "email"}
    }


@pytest.mark.parametrize(
    ("error_class", "status", "code"),
    [
        (ValidationError, 400, "validation_error"),
        (UnauthorizedError, 401, "unauthorized"),
        (ForbiddenError, 403, "forbidden"),
        (NotFoundError, 404, "not_found"),
        (ConflictError, 409, "conflict"),
        (UpstreamError, 502, "upstream_error"),
    ],
)
def test_api_errors_carry_status_and_code(error_class, status, code):
    error = error_class("message", field="f")
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.message, error.field) == (status, code, "message", "f")


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10
    register_error_handlers(app)

    @app.post("/validate")
    def validate():
        raise ValidationError("email is required", field="email")

    @app.get("/crash")
    def crash():
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/gone")
    def gone():
        abort(410)

    @app.post("/upload")
    def upload():
        from flask import request

        return {"size": len(request.get_data())}

    return app


def test_api_error_becomes_its_status_and_shape(app):
    response = app.test_client().post("/validate")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": {"code": "validation_error", "message": "email is required", "field": "email"}
    }


def test_unexpected_exception_is_a_500_without_internals(app, caplog):
    response = app.test_client().get("/crash")
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "internal_error", "message": "An internal error occurred."}
    }
    assert "hunter2" not in response.get_data(as_text=True)
    assert "secret internals" in caplog.text  # the operator still sees it in the log


def test_unknown_route_is_json_404(app):
    response = app.test_client().get("/nowhere")
    assert_error(response, 404, "not_found")
    assert response.is_json


def test_wrong_method_is_json_405_keeping_the_allow_header(app):
    response = app.test_client().get("/validate")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert response.mimetype == "application/json"


def test_too_large_body_is_json_413(app):
    response = app.test_client().post("/upload", data="x" * 11)
    assert_error(response, 413, "payload_too_large")


def test_other_http_errors_keep_their_status(app):
    response = app.test_client().get("/gone")
    assert_error(response, 410, "gone")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "not_found"),
        (413, "payload_too_large"),
        (418, "i_m_a_teapot"),
        (599, "internal_error"),
    ],
)
def test_http_error_code(status, code):
    assert http_error_code(status) == code
