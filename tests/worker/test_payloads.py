"""Task payloads are validated at the edge, before anything reaches the database."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from s2s_contract.tasks import FeedbackRequest, ForgetRequest, ReplyRequest, ResetRequest


@pytest.mark.parametrize(
    ("schema", "fields"),
    [
        (ReplyRequest, {"chat_id": 1, "user_id": 1, "message_id": 1, "text": "hi"}),
        (FeedbackRequest, {"turn_id": 1, "user_id": 1, "value": 1}),
        (ForgetRequest, {"user_id": 1, "chat_ids": [1]}),
        (ResetRequest, {"chat_id": 1}),
    ],
)
def test_ids_beyond_bigint_are_refused_at_the_edge(schema: Any, fields: dict[str, Any]) -> None:
    schema.model_validate(fields)
    for name, value in fields.items():
        if name.endswith("_id") or name == "chat_ids":
            for wide in (2**63, -(2**63) - 1, 2**70):
                bad = [wide] if isinstance(value, list) else wide
                with pytest.raises(ValidationError):
                    schema.model_validate({**fields, name: bad})
