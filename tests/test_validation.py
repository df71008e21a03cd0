"""Bad input fails before any LLM call, names the field and what is allowed, writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import refine_kit
from refine_kit.settings import MAX_TOPIC_CHARS, Settings

CASES = [
    ({"topics": []}, r"topics: the list is empty"),
    ({"topics": "one string"}, r"topics: expected a list"),
    ({"topics": ["ok", "   "]}, r"topics\[1\]: is blank"),
    ({"topics": ["x" * (MAX_TOPIC_CHARS + 1)]}, rf"topics\[0\]: .*at most {MAX_TOPIC_CHARS}"),
    ({"topics": ["Solar", "solar "]}, r"topics\[1\]: 'solar' duplicates topics\[0\]"),
    ({"topics": ["a\nb"]}, r"topics\[0\]: contains control characters"),
    ({"max_iterations": 0}, r"max_iterations: .*greater than or equal to 1"),
    ({"max_iterations": 11}, r"max_iterations: .*less than or equal to 10"),
    ({"quality_threshold": 0}, r"quality_threshold: .*greater than or equal to 1"),
    ({"quality_threshold": 11}, r"quality_threshold: .*less than or equal to 10"),
    ({"max_concurrency": 0}, r"max_concurrency: "),
    ({"backend": "anthropic"}, r"backend: .*'auto', 'offline' or 'openai'"),
    ({"model": "gpt-4o"}, r"model: the offline back-end serves only"),
    ({"backend": "openai", "model": "llama3"}, r"model: 'llama3' is not an OpenAI model"),
    ({"base_url": "ftp://x"}, r"base_url: .*http:// or https://"),
    ({"backend": "offline", "base_url": "http://127.0.0.1:1/v1"}, r"base_url: .*'offline'"),
    ({"faults": {"rate": 2}}, r"faults.rate: .*less than or equal to 0.9"),
    ({"faults": {"kinds": ["teapot"]}}, r"faults.kinds.0: .*'429'"),
]


@pytest.mark.parametrize(("kwargs", "message"), CASES)
def test_bad_input_is_rejected_before_any_call(
    kwargs: dict, message: str, tmp_path: Path, model_stats
) -> None:
    args = {"topics": ["Tidal power"], "output_dir": tmp_path / "out", **kwargs}
    with pytest.raises(refine_kit.ConfigError, match=message):
        refine_kit.refine_batch(args.pop("topics"), **args)
    assert model_stats.calls == 0
    assert not (tmp_path / "out").exists()


def test_an_unknown_setting_is_named_before_any_call(tmp_path: Path, model_stats) -> None:
    # The entry points list their settings, so Python itself rejects a misspelt keyword...
    with pytest.raises(TypeError, match="colour"):
        refine_kit.refine_batch(["Tidal power"], output_dir=tmp_path / "out", colour="blue")  # type: ignore[call-arg]
    # ...and settings built any other way (submit_batch, Settings) name it as well.
    with pytest.raises(refine_kit.ConfigError, match="colour: unknown setting"):
        refine_kit.submit_batch(["Tidal power"], output_dir=tmp_path / "out", colour="blue")
    assert model_stats.calls == 0
    assert not (tmp_path / "out").exists()


def test_environment_variables_are_read_and_arguments_win(monkeypatch) -> None:
    monkeypatch.setenv("REFINE_KIT_QUALITY_THRESHOLD", "6")
    monkeypatch.setenv("REFINE_KIT_MAX_CONCURRENCY", "3")
    assert Settings().quality_threshold == 6
    assert Settings(quality_threshold=9).quality_threshold == 9
    monkeypatch.setenv("REFINE_KIT_MAX_CONCURRENCY", "lots")
    with pytest.raises(refine_kit.ConfigError, match="max_concurrency"):
        refine_kit.refine_batch(["x"])


def test_fault_plan_comes_from_the_environment_as_json(monkeypatch) -> None:
    monkeypatch.setenv("REFINE_KIT_FAULTS", '{"rate": 0.2, "kinds": ["429"], "seed": 4}')
    plan = Settings().llm_config().faults
    assert plan.rate == 0.2 and plan.kinds == ("429",) and plan.seed == 4


def test_backend_auto_follows_key_and_base_url(monkeypatch) -> None:
    assert Settings().resolved_backend == "offline"
    assert Settings(base_url="http://127.0.0.1:8000/v1").resolved_backend == "openai"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = Settings().llm_config()
    assert config.backend == "openai" and config.model == "gpt-4o-mini"
    assert "sk-test" not in config.model_dump_json()


def test_single_refine_validates_its_topic(model_stats) -> None:
    with pytest.raises(refine_kit.ConfigError, match="topic: is blank"):
        refine_kit.refine("  ")
    assert model_stats.calls == 0
