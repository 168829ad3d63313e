"""get_agent(): the AGENT_BACKEND setting, caching, and bad configuration."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from messaging.agent import conf, get_agent
from messaging.agent.llm import OpenAICompatibleAgent
from messaging.agent.rules import RuleBasedAgent


@pytest.fixture
def agent_settings(monkeypatch):
    values: dict[str, object] = {}
    monkeypatch.setattr(conf, "setting", lambda name, default: values.get(name, default))
    get_agent.cache_clear()
    yield values
    get_agent.cache_clear()


def test_default_backend_is_rule_based(agent_settings):
    agent = get_agent()

    assert type(agent) is RuleBasedAgent
    assert agent.name == "rule_based"


def test_backend_is_instantiated_once(agent_settings):
    assert get_agent() is get_agent()


def test_setting_selects_backend(agent_settings):
    agent_settings["AGENT_BACKEND"] = "messaging.agent.llm.OpenAICompatibleAgent"

    assert type(get_agent()) is OpenAICompatibleAgent


def test_cache_clear_rereads_the_setting(agent_settings):
    first = get_agent()
    agent_settings["AGENT_BACKEND"] = "messaging.agent.llm.OpenAICompatibleAgent"
    get_agent.cache_clear()

    assert type(first) is RuleBasedAgent
    assert type(get_agent()) is OpenAICompatibleAgent


@pytest.mark.parametrize(
    "dotted_path",
    ["messaging.agent.nope.Agent", "not-a-path", "messaging.agent.base.TurnSnapshot"],
)
def test_bad_backend_is_improperly_configured(agent_settings, dotted_path):
    agent_settings["AGENT_BACKEND"] = dotted_path

    with pytest.raises(ImproperlyConfigured, match="AGENT_BACKEND"):
        get_agent()
