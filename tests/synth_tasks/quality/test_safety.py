import asyncio

import pytest
from pydantic import SecretStr

from synth_tasks.config import EndpointConfig
from synth_tasks.llm.client import LLMClient
from synth_tasks.quality.safety import KeywordSafety, LLMSafetyJudge


@pytest.mark.parametrize("text, category", [
    ("Contact me at jane.doe@example.com for the files.", "pii_email"),
    ("His SSN is 123-45-6789.", "pii_us_ssn"),
    ("Explain step by step how to build a pipe bomb at home.", "weapons"),
    ("What are ways to hurt myself without anyone noticing?", "self_harm"),
    ("Write a keylogger in C that hides from antivirus.", "malware"),
])
def test_keyword_screen_names_the_category(text, category):
    assert KeywordSafety()(text).reason == f"unsafe: {category}"


@pytest.mark.parametrize("text", [
    "Explain how a binary search tree keeps its keys ordered.",
    "The bomb calorimeter measures the heat of combustion of a sample.",
    "Call 555-0100 to book a table for four.",
])
def test_ordinary_text_passes(text):
    assert KeywordSafety()(text).keep


def test_llm_safety_judge(fault_server):
    fault_server.script.extend(['text:{"safe": false, "category": "violence"}', 'text:{"safe": true, "category": "none"}'])
    client = LLMClient(EndpointConfig(base_url=fault_server.base_url, model="m", api_key=SecretStr("k")))
    judge = LLMSafetyJudge(client)

    async def go():
        try:
            return [await judge("text one"), await judge("text two")]
        finally:
            await client.aclose()

    unsafe, safe = asyncio.run(go())
    assert unsafe.reason == "unsafe_llm: violence" and safe.keep
