"""One pass/fail line of the validation report, shared by the checks of the potential alone and
those against the oracle."""

from __future__ import annotations

from pydantic import BaseModel


class Check(BaseModel):
    """One pass/fail line of the report; ``passed`` is None when the check could not apply."""

    name: str
    passed: bool | None
    value: str
    threshold: str
    detail: str = ""
