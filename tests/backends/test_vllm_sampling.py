"""The vllm backend's sampling settings, with a stand-in for vLLM (runs without it).

``_sampling`` builds one ``vllm.SamplingParams`` per prompt; the stand-in records its
keyword arguments. The real engine is tested in ``test_vllm.py`` (``make test-vllm``).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cai.backends.base import SamplingParams
from cai.backends.vllm import VLLMBackend
from cai.errors import CaiError


@pytest.fixture
def backend() -> VLLMBackend:
    """A ``VLLMBackend`` whose vLLM module is a stand-in; ``LLM.generate`` must not run."""

    def no_generate(*args, **kwargs):
        raise AssertionError("generate must not reach the engine")

    backend = object.__new__(VLLMBackend)
    backend._vllm = SimpleNamespace(SamplingParams=lambda **kw: kw)
    backend._stop_ids = [2]
    backend.llm = SimpleNamespace(generate=no_generate)
    return backend


def test_min_p_is_passed_and_no_repetition_penalty_is_sent(backend):
    sent = backend._sampling(SamplingParams(temperature=0.8, top_p=0.9, min_p=0.05), [1, 2])
    assert sent["min_p"] == 0.05 and sent["top_p"] == 0.9 and sent["temperature"] == 0.8
    assert "repetition_penalty" not in sent  # vLLM's default, 1.0, is off
    assert backend._sampling(SamplingParams(), [1, 2])["min_p"] == 0.0  # vLLM's "off" too


def test_repetition_penalty_is_refused_before_generating(backend):
    params = SamplingParams(repetition_penalty=1.2)
    with pytest.raises(CaiError) as err:
        backend.generate([[{"role": "user", "content": "Hi"}]], params)
    message = str(err.value)
    assert "\n" not in message and "repetition_penalty 1.2" in message
    assert "vLLM's repetition_penalty also penalises every token of the prompt" in message
    assert "set repetition_penalty to 1.0 and use min_p or top_p" in message
    assert "transformers backend" in message
    with pytest.raises(CaiError):
        backend._sampling(params, [1, 2])
