"""The transformers backend, for real, on the tiny random model (and SmolLM2 when slow)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cai.backends import SamplingParams

CONVS = [
    [{"role": "user", "content": "Hello there, how are you today?"}],
    [{"role": "user", "content": "Name a colour."}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Give me three reasons to learn to cook at home, briefly."},
    ],
]
OPTIONS = [" (A)", " (B)"]
JUDGE = [
    {"role": "user", "content": "Which is better? (A) yes (B) no"},
    {"role": "assistant", "content": "The better response is"},
]


def direct_option_logprob(backend, conversation, option) -> float:
    """Score an option with a plain, unbatched, unpadded forward pass."""
    text = backend.render(conversation)
    ctx = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    cont = backend.option_token_ids(ctx, text, option)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(backend.model(ids).logits[0].float(), -1)
    return sum(float(logprobs[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))


def test_generate_shapes_counts_and_order(tiny_backend):
    params = SamplingParams(max_new_tokens=6, temperature=1.0, seed=3, n=2)
    out = tiny_backend.generate(CONVS, params)
    assert [len(g) for g in out] == [2, 2, 2]
    for gens in out:
        for g in gens:
            assert 1 <= g.num_tokens <= 6 and g.finish_reason in ("stop", "length")
    # Results come back in input order, whatever the length sorting did.
    single = tiny_backend.generate([CONVS[1]], SamplingParams(max_new_tokens=6, temperature=0))
    batched = tiny_backend.generate(CONVS, SamplingParams(max_new_tokens=6, temperature=0))
    assert batched[1][0].text == single[0][0].text


def test_greedy_matches_a_manual_decode(tiny_backend):
    ids = tiny_backend.encode([CONVS[0]])[0]
    manual = list(ids)
    with torch.no_grad():
        for _ in range(5):
            logits = tiny_backend.model(torch.tensor([manual])).logits[0, -1]
            manual.append(int(logits.argmax()))
    out = tiny_backend.generate([CONVS[0]], SamplingParams(max_new_tokens=5, temperature=0))[0][0]
    expected = tiny_backend.tokenizer.decode(manual[len(ids) :], skip_special_tokens=True)
    assert out.text == expected and out.num_tokens == 5 and out.finish_reason == "length"


def test_same_seed_same_text_other_seed_other_text(tiny_backend):
    def run(seed):
        params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=seed)
        return [g[0].text for g in tiny_backend.generate(CONVS, params)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_stop_string_cuts_text_and_counts_tokens(tiny_backend):
    sampled = SamplingParams(max_new_tokens=16, temperature=1.0, seed=5)
    full = tiny_backend.generate([CONVS[0]], sampled)[0][0]
    start = next(i for i in range(len(full.text) // 2, len(full.text)) if full.text[i].strip())
    stop = full.text[start : start + 2]
    assert stop.strip(), full.text
    cut = tiny_backend.generate([CONVS[0]], replace(sampled, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert stop not in cut.text and 1 <= cut.num_tokens < full.num_tokens


def test_end_of_turn_stops_and_is_counted(tiny_backend, monkeypatch):
    """Force the end-of-turn token after two steps: finish 'stop', count includes it."""
    eos = tiny_backend.tokenizer.eos_token_id
    greedy = SamplingParams(max_new_tokens=2, temperature=0)
    first_two = tiny_backend.generate([CONVS[0]], greedy)[0][0]
    tokens = tiny_backend.tokenizer(first_two.text, add_special_tokens=False)["input_ids"]
    gen = tiny_backend._finish([*tokens, eos, eos, eos], ())
    assert gen.text == first_two.text and gen.num_tokens == len(tokens) + 1
    assert gen.finish_reason == "stop"


def test_option_scores_equal_a_direct_forward_pass(tiny_backend, monkeypatch):
    def no_generate(*args, **kwargs):
        raise AssertionError("option scoring must not call generate")

    monkeypatch.setattr(tiny_backend.model, "generate", no_generate)
    convs = [JUDGE, CONVS[0], CONVS[2] + [{"role": "assistant", "content": "My answer:"}]]
    scores = tiny_backend.score_options(convs, [*OPTIONS, " Paris is lovely"])
    for conv, row in zip(convs, scores):
        for option, score in zip([*OPTIONS, " Paris is lovely"], row):
            assert score == pytest.approx(
                direct_option_logprob(tiny_backend, conv, option), abs=1e-4
            )


def test_whole_option_is_scored_not_just_the_first_token(tiny_backend):
    text = tiny_backend.render(JUDGE)
    ctx = tiny_backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    a = tiny_backend.option_token_ids(ctx, text, " (A)")
    b = tiny_backend.option_token_ids(ctx, text, " (B)")
    assert len(a) == 3 and a[0] == b[0] and a[1] != b[1]  # " (", "A", ")"
    sa, sb = tiny_backend.score_options([JUDGE], OPTIONS)[0]
    assert sa != sb


@pytest.mark.slow
def test_smollm2_offline_answers_stops_on_im_end_and_scores():
    from cai.backends import load_backend

    backend = load_backend("transformers", "smollm2-135m", batch_size=4)
    conv = [{"role": "user", "content": "What is the capital of France?"}]
    greedy = SamplingParams(max_new_tokens=128, temperature=0, repetition_penalty=1.2)
    first = backend.generate([conv], greedy)[0][0]
    assert first.finish_reason == "stop" and "Paris" in first.text
    assert backend.tokenizer.eos_token == "<|im_end|>"
    # A 135M model at temperature 0.7 often wanders off, so only the seeding is checked here.
    params = SamplingParams(max_new_tokens=32, temperature=0.7, repetition_penalty=1.2, seed=1)
    sampled = backend.generate([conv], params)[0][0].text
    assert backend.generate([conv], params)[0][0].text == sampled
    convs = [JUDGE, conv + [{"role": "assistant", "content": "The answer is"}]]
    scores = backend.score_options(convs, [*OPTIONS, " Paris"])
    for c, row in zip(convs, scores):
        for option, score in zip([*OPTIONS, " Paris"], row):
            assert score == pytest.approx(direct_option_logprob(backend, c, option), abs=1e-4)
    assert scores[1][2] > scores[1][0]  # "The answer is Paris" beats "The answer is (A)"


SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 12}


def test_fast_engine_matches_generate_greedy(tiny_backend):
    from cai.backends.hf import TransformersBackend

    hf = TransformersBackend("tiny-random", batch_size=4, engine="hf")
    params = SamplingParams(max_new_tokens=10, temperature=0, repetition_penalty=1.3)
    shared = [[SYSTEM, *c[-1:]] for c in CONVS]  # one batch sharing a long prefix (cascade)
    for convs in (shared + CONVS, shared):
        ours = tiny_backend.generate(convs, params)
        theirs = hf.generate(convs, params)
        assert [g[0].text for g in ours] == [g[0].text for g in theirs]
        assert [g[0].num_tokens for g in ours] == [g[0].num_tokens for g in theirs]
    assert tiny_backend.decoder.cascade


def test_shared_prefix_is_prefilled_once_and_changes_nothing(tiny_backend):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=4)
    convs = [[SYSTEM, *c[-1:]] for c in CONVS]
    saved = tiny_backend.decoder.prefix_tokens_saved
    together = tiny_backend.generate(convs, params)
    assert tiny_backend.decoder.prefix_tokens_saved > saved
    alone = [tiny_backend.generate([c], params)[0] for c in convs]
    assert [g[0].text for g in together] == [g[0].text for g in alone]


def test_a_rows_sample_does_not_depend_on_its_batch(tiny_backend):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=9)
    with_others = tiny_backend.generate(CONVS, params)[1][0].text
    alone = tiny_backend.generate([CONVS[1]], params)[0][0].text
    assert with_others == alone


# ---------------------------------------------------------------------- sampling semantics


@pytest.fixture(scope="module")
def hf_engine():
    """The reference path: transformers' ``generate`` (engine="hf")."""
    from cai.backends.hf import TransformersBackend

    return TransformersBackend("tiny-random", batch_size=4, engine="hf")


def _answer_ids(backend, convs, params) -> list[list[int]]:
    """The generated token ids of each conversation, on the backend's own engine."""
    batch = backend.encode(convs)
    if backend.engine == "cai":
        return backend._decode(batch, [0] * len(batch), params)
    return backend._hf_generate(batch, params, 0)


@pytest.mark.parametrize("engine", ["cai", "hf"])
def test_repetition_penalty_spares_the_prompt_and_counts_the_answer(
    tiny_backend, hf_engine, engine
):
    """tiny-random's greedy answer is "\\n" over and over; "\\n" is in every ChatML prompt.
    Penalised, the first token is still "\\n" (the prompt counts for nothing), and then
    no token comes twice (the answer's own tokens count)."""
    backend = tiny_backend if engine == "cai" else hf_engine
    greedy = SamplingParams(max_new_tokens=12, temperature=0)
    plain = _answer_ids(backend, CONVS, greedy)
    first = [row[0] for row in plain]
    prompts = backend.encode(CONVS)
    assert all(t in p for t, p in zip(first, prompts))  # the first token is a prompt token
    assert all(len(set(row)) < len(row) for row in plain)  # unpenalised, it repeats
    for penalty in (5.0, 1e6):
        penalised = _answer_ids(backend, CONVS, replace(greedy, repetition_penalty=penalty))
        assert [row[0] for row in penalised] == first
        assert all(len(set(row)) == len(row) == 12 for row in penalised), penalised


def test_engines_agree_on_greedy_with_a_large_penalty(tiny_backend, hf_engine):
    params = SamplingParams(max_new_tokens=12, temperature=0, repetition_penalty=5.0)
    convs = [[SYSTEM, *c[-1:]] for c in CONVS] + CONVS  # shared prefix and plain rows
    assert _answer_ids(tiny_backend, convs, params) == _answer_ids(hf_engine, convs, params)
    ours, theirs = tiny_backend.generate(convs, params), hf_engine.generate(convs, params)
    assert [g[0].text for g in ours] == [g[0].text for g in theirs]


@pytest.mark.parametrize("engine", ["cai", "hf"])
def test_min_p_near_one_samples_the_greedy_answer(tiny_backend, hf_engine, engine):
    """min_p=0.99 leaves only the top token, on both engines. (Unpenalised: tiny-random's
    logits are so flat that, once its favourite token is penalised, near ties abound.)"""
    backend = tiny_backend if engine == "cai" else hf_engine
    greedy = SamplingParams(max_new_tokens=8, temperature=0)
    sampled = replace(greedy, temperature=1.5, min_p=0.99, seed=5)
    assert _answer_ids(backend, CONVS, sampled) == _answer_ids(backend, CONVS, greedy)
    loose = _answer_ids(backend, CONVS, replace(sampled, min_p=0.0))
    assert loose != _answer_ids(backend, CONVS, greedy)  # the sampling itself is not greedy


PROBS = [0.10, 0.50, 0.05, 0.20, 0.15]
"""A hand-made next-token distribution, not in order of probability."""
U = torch.arange(1000, dtype=torch.float32) / 1000
"""1000 evenly spread uniforms: the share of draws of each token is its kept mass."""


def _draws(u=U, seen=None, **sampling) -> list[int]:
    """``Decoder._sample`` of ``PROBS`` (as logits) once per uniform in ``u``."""
    from cai.backends.decode import Decoder

    logits = torch.tensor([PROBS]).log().expand(len(u), -1)
    seen = torch.zeros_like(logits, dtype=torch.bool) if seen is None else seen
    params = SamplingParams(**{"temperature": 1.0, **sampling})
    return Decoder._sample(logits, seen, u, params).tolist()


def _shares(draws: list[int]) -> dict[int, float]:
    return {t: draws.count(t) / len(draws) for t in sorted(set(draws))}


def test_min_p_drops_exactly_the_tokens_below_min_p_times_the_top():
    from cai.backends.decode import filter_probs

    probs = torch.tensor([PROBS])
    kept = filter_probs(probs, min_p=0.25)  # floor 0.125: 0.10 and 0.05 go
    assert kept[0].tolist() == pytest.approx([0.0, 0.50, 0.0, 0.20, 0.15])
    assert filter_probs(probs, min_p=0.41)[0].tolist() == pytest.approx([0, 0.50, 0, 0, 0])
    assert filter_probs(probs).tolist() == probs.tolist()  # off by default
    shares = _shares(_draws(min_p=0.25))
    assert shares.keys() == {1, 3, 4}  # the draws follow the kept mass, renormalised
    assert shares == pytest.approx({1: 0.5 / 0.85, 3: 0.2 / 0.85, 4: 0.15 / 0.85}, abs=2e-3)
    assert set(_draws()) == {0, 1, 2, 3, 4}


def test_min_p_near_one_is_the_argmax_and_greedy_ignores_the_filters():
    assert set(_draws(min_p=0.99)) == {1}
    assert set(_draws(temperature=0.0, min_p=0.5, top_p=0.1)) == {1}
    # min-p is measured after temperature: at temperature 5 the top token's lead shrinks
    # (p ** 1/5), so 0.65 x top keeps 0.20, 0.15 and 0.10 too, but not 0.05
    assert set(_draws(min_p=0.65)) == {1}
    assert set(_draws(min_p=0.65, temperature=5.0)) == {0, 1, 3, 4}


def test_top_p_and_min_p_together_keep_what_both_keep():
    from cai.backends.decode import filter_probs

    probs = torch.tensor([PROBS])
    # top_p 0.6 keeps 0.50 and 0.20 (0.50 + 0.20 passes 0.6); min_p 0.25 keeps three
    both = filter_probs(probs, top_p=0.6, min_p=0.25)
    assert both[0].tolist() == pytest.approx([0, 0.50, 0, 0.20, 0])
    # top_p 0.9 keeps four (0.85 before the 0.10); min_p 0.25 is the tighter one here
    assert filter_probs(probs, top_p=0.9)[0].tolist() == pytest.approx([0.10, 0.5, 0, 0.2, 0.15])
    both = filter_probs(probs, top_p=0.9, min_p=0.25)
    assert both[0].tolist() == pytest.approx([0, 0.50, 0, 0.20, 0.15])
    assert _shares(_draws(top_p=0.6, min_p=0.25)) == pytest.approx(
        {1: 0.5 / 0.7, 3: 0.2 / 0.7}, abs=2e-3
    )


def test_penalty_comes_before_temperature_and_the_filters():
    """The top token, once generated, is penalised: log(0.5) x 10 puts it far below the
    rest, so min-p (measured after the penalty) drops it, and the argmax moves on."""
    seen = torch.zeros((len(U), len(PROBS)), dtype=torch.bool)
    seen[:, 1] = True
    assert set(_draws(seen=seen, repetition_penalty=10.0, min_p=0.1)) == {0, 2, 3, 4}
    assert set(_draws(seen=seen, repetition_penalty=10.0, min_p=0.99)) == {3}
    assert set(_draws(seen=seen, repetition_penalty=10.0, temperature=0.0)) == {3}
    assert set(_draws(repetition_penalty=10.0, temperature=0.0)) == {1}  # nothing seen
