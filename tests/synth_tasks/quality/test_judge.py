import asyncio
import json

import pytest
from pydantic import SecretStr

from synth_tasks.config import EndpointConfig
from synth_tasks.llm.client import LLMClient, LLMError
from synth_tasks.quality.judge import DEFAULT_WEIGHTS, LLMJudge, RewardModelJudge, weighted_score


def _client(server):
    return LLMClient(EndpointConfig(base_url=server.base_url, model="judge", api_key=SecretStr("k")),
                     backoff_initial_s=0.01)


def _score(judge, client):
    async def go():
        try:
            return await judge.score("Add 2 and 3.", "2 + 3 = 5.")
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_weighting():
    scores = {"helpfulness": 4, "correctness": 4, "coherence": 3, "complexity": 1, "verbosity": 2}
    assert weighted_score(scores) == pytest.approx(0.3 * 4 + 0.3 * 4 + 0.2 * 3 + 0.1 * 1 + 0.1 * 2)
    assert weighted_score(scores, {"helpfulness": 1, "correctness": 1}) == 4.0
    with pytest.raises(ValueError, match="lack"):
        weighted_score({"helpfulness": 1}, DEFAULT_WEIGHTS)


def test_llm_judge_parses_scores(fault_server):
    fault_server.script.append('text:{"helpfulness": 3, "correctness": 4, "coherence": 4, "complexity": 0, "verbosity": 1}')
    client = _client(fault_server)
    result = _score(LLMJudge(client), client)
    assert result == {"helpfulness": 3, "correctness": 4, "coherence": 4, "complexity": 0, "verbosity": 1,
                      "overall": 3.0}  # .3*3 + .3*4 + .2*4 + .1*0 + .1*1
    assert "2 + 3 = 5." in fault_server.requests[0]["messages"][0]["content"]


@pytest.mark.parametrize("bad", ['{"helpfulness": 5, "correctness": 4, "coherence": 4, "complexity": 0, "verbosity": 1}',
                                 "Helpfulness: great! Correctness: 4/4"])
def test_malformed_or_out_of_range_judgements_fail_with_the_raw_text(fault_server, bad):
    fault_server.script.extend([f"text:{bad}", f"text:{bad}"])  # the answer and the repair attempt
    client = _client(fault_server)
    with pytest.raises(LLMError) as err:
        _score(LLMJudge(client), client)
    assert err.value.kind == "invalid_structured_output" and err.value.raw == bad


def test_reward_model_scores_come_from_logprobs(fault_server):
    body = {"id": "r", "object": "chat.completion", "created": 0, "model": "reward",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": ""},
                         "logprobs": {"content": [{"token": a, "logprob": v, "top_logprobs": []} for a, v in
                                                  zip(DEFAULT_WEIGHTS, (3.5, 3.75, 3.9, 1.2, 1.6))]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}}
    fault_server.script.append("raw:" + json.dumps(body))
    client = _client(fault_server)
    result = _score(RewardModelJudge(client), client)
    assert result["correctness"] == 3.75 and result["overall"] == pytest.approx(
        0.3 * 3.5 + 0.3 * 3.75 + 0.2 * 3.9 + 0.1 * 1.2 + 0.1 * 1.6)
    assert [m["role"] for m in fault_server.requests[0]["messages"]] == ["user", "assistant"]


def test_reward_model_without_scores_fails_with_the_raw_response(fault_server):
    client = _client(fault_server)  # the default reply has no logprobs
    with pytest.raises(LLMError) as err:
        _score(RewardModelJudge(client), client)
    assert err.value.kind == "invalid_reward_response" and '"choices"' in err.value.raw
