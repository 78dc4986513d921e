import pytest

from synth_tasks.config import ConfigError, parse_config
from synth_tasks.methods.mind.config import MindConfig, Style


def test_defaults_follow_the_paper():
    cfg = MindConfig()
    assert cfg.chunk_tokens == 500 and cfg.temperature == 1.0 and cfg.top_p == 0.9
    assert cfg.styles == list(Style) and len(cfg.styles) == 7
    assert cfg.min_conversation_tokens == 50


def test_errors_name_every_bad_field():
    with pytest.raises(ConfigError) as err:
        parse_config(MindConfig, {"chunk_tokens": 10, "styles": ["two_students", "sonnet"], "tempreature": 1})
    message = str(err.value)
    assert "chunk_tokens" in message and "styles.1" in message and "tempreature: Extra inputs" in message


def test_sampling_seed_is_per_job_and_stable():
    cfg = MindConfig(seed=3)
    assert cfg.sampling("a").seed == cfg.sampling("a").seed != cfg.sampling("b").seed
    assert cfg.sampling("a").seed != MindConfig(seed=4).sampling("a").seed
