"""INFER ``task: verify`` (a challenge's re-execution): its params and the shape of its input."""

from __future__ import annotations

import json

import pytest

from registry.jobs import (
    InvalidJobInputError,
    InvalidJobParamsError,
    JobKind,
    VerifyParams,
    check_input,
    parse_params,
)


def test_verify_params_parse_and_refuse_anything_else() -> None:
    assert isinstance(parse_params(JobKind.INFER, '{"task":"verify"}'), VerifyParams)
    with pytest.raises(InvalidJobParamsError):
        parse_params(JobKind.INFER, {"task": "verify", "max_new_tokens": 8})
    with pytest.raises(InvalidJobParamsError):
        parse_params(JobKind.EVAL, {"task": "verify"})


@pytest.mark.parametrize(
    "doc",
    [
        {"receipt": {}, "request": {}},
        {"receipt": {}, "request": {}, "response": {}, "extra": 1},
        {"receipt": "0x", "request": {}, "response": {}},
        ["receipt", "request", "response"],
    ],
)
def test_a_verify_input_is_exactly_receipt_request_response(doc: object) -> None:
    params = parse_params(JobKind.INFER, {"task": "verify"})
    check_input(
        JobKind.INFER, params, json.dumps({"receipt": {}, "request": {}, "response": {}}).encode()
    )
    with pytest.raises(InvalidJobInputError):
        check_input(JobKind.INFER, params, json.dumps(doc).encode())
