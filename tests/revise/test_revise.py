"""The critique-and-revise loop: control flow on a scripted backend, then for real."""

from __future__ import annotations

from collections import Counter

from cai.backends.base import SamplingParams
from cai.constitution import parse_constitution
from cai.data import PromptRow
from cai.jobs import GenerationCache
from cai.revise import Reviser, principle_stats
from tests.fakes import ScriptedBackend

CONSTITUTION = parse_constitution(
    """\
name: t
system_prompt: Be good.
principles:
  - id: harm
    critique: CRIT-HARM
    revision: REV-HARM
  - id: rude
    critique: CRIT-RUDE
    revision: REV-RUDE
examples:
  - prompt: example prompt
    response: example answer
    principle: harm
    critique: example critique
    revision: example revision
"""
)


def reviser_script(no_change_for: str = ""):
    """Answers by the last user message: critiques, revisions (with a preamble) or answers."""

    def answer(conv):
        last = conv[-1]["content"]
        if last.startswith("CRIT-"):
            if no_change_for and no_change_for in last:
                return "No changes are needed."
            return f"critique of {conv[-2]['content']}"
        if last.startswith("REV-"):
            return f"Sure, here is the revised response:\nrevised({conv[-4]['content']})"
        return f"answer to {last}"

    return answer


def scripted(no_change_for: str = "") -> ScriptedBackend:
    return ScriptedBackend(answer=reviser_script(no_change_for))


def rows(n: int) -> list[PromptRow]:
    return [
        PromptRow(
            id=f"r{i}", conversation=[{"role": "user", "content": f"q{i}"}], index=i, extra={}
        )
        for i in range(n)
    ]


def reviser(backend, **kw) -> Reviser:
    params = SamplingParams(max_new_tokens=32, seed=kw.pop("seed", 0))
    return Reviser(backend=backend, constitution=CONSTITUTION, params=params, **kw)


def test_one_batched_call_per_stage_and_the_output_columns():
    backend = scripted()
    out = reviser(backend).revise(rows(5))
    assert [len(c) for c in backend.calls] == [5, 5, 5]  # initial, critique, revision
    row = out[2]
    assert row["prompt"] == [{"role": "user", "content": "q2"}]
    assert row["initial_response"] == "answer to q2"
    assert row["revision"] == "revised(answer to q2)"  # preamble removed
    assert row["trace"]["rounds"][0]["revision_raw"].startswith("Sure, here is")
    assert row["messages"] == row["prompt"] + [{"role": "assistant", "content": row["revision"]}]
    assert row["completion"] == row["chosen"] == [{"role": "assistant", "content": row["revision"]}]
    assert row["rejected"] == [{"role": "assistant", "content": "answer to q2"}]
    assert row["num_tokens"]["total"] == sum(
        row["num_tokens"][k] for k in ("initial", "critique", "revision")
    )
    prov = row["provenance"]
    assert prov["constitution"]["hash"] == CONSTITUTION.content_hash
    assert prov["model"] == "scripted-model" and prov["seed"] == 0 and prov["schema_version"] == 1
    assert set(prov["templates"]) == {"critique", "revision"}


def test_conversations_carry_system_prompt_and_few_shot_block():
    backend = scripted()
    reviser(backend).revise(rows(1))
    initial, critique, revision = (calls[0] for calls in backend.calls)
    assert initial == [{"role": "system", "content": "Be good."}, {"role": "user", "content": "q0"}]
    assert critique[0]["role"] == "system"
    shown = [m["content"] for m in critique[1:7]]
    assert shown[:2] == ["example prompt", "example answer"]
    assert shown[2].startswith("CRIT-HARM") and '"example prompt"' in shown[2]  # quotes it
    assert shown[3:] == ["example critique", revision[5]["content"], "example revision"]
    assert critique[-3:-1] == [
        {"role": "user", "content": "q0"},
        {"role": "assistant", "content": "answer to q0"},
    ]
    assert revision[-2]["content"].startswith("critique of")
    backend = scripted()
    reviser(backend, few_shot=False).revise(rows(1))
    assert "example prompt" not in str(backend.calls[1])


def test_rounds_critique_the_latest_revision_and_principles_are_seeded_per_row():
    backend = scripted()
    r = reviser(backend, rounds=3)
    out = r.revise(rows(20))
    assert len(backend.calls) == 7
    first = out[0]["trace"]["rounds"]
    assert first[1]["revision"] == f"revised({first[0]['revision']})"
    plans = [tuple(o["principle_ids"]) for o in out]
    assert len(set(plans)) > 1  # rows differ
    again = reviser(scripted(), rounds=3).revise(list(reversed(rows(20))))
    assert {o["id"]: tuple(o["principle_ids"]) for o in again} == {
        o["id"]: p for o, p in zip(out, plans)
    }
    other_seed = reviser(scripted(), rounds=3, seed=1).revise(rows(20))
    assert [tuple(o["principle_ids"]) for o in other_seed] != plans


def test_principles_all_and_skip_unneeded():
    backend = scripted(no_change_for="RUDE")
    out = reviser(backend, principles="all", skip_unneeded=True).revise(rows(3))
    steps = out[0]["trace"]["rounds"]
    assert [s["principle_id"] for s in steps] == ["harm", "rude"]
    assert steps[1]["no_change_needed"] and steps[1]["skipped"]
    assert steps[1]["revision"] == steps[0]["revision"]
    # initial, critique, revision, critique (no revision call: all three skipped)
    assert [len(c) for c in backend.calls] == [3, 3, 3, 3]
    stats = {p["principle"]: p for p in principle_stats(out)}
    assert stats["rude"]["no_change_rate"] == 1.0 and stats["harm"]["no_change_rate"] == 0.0
    assert stats["rude"]["mean_length_change"] == 0


def test_cache_regenerates_only_what_changed(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    backend = scripted()
    reviser(backend, cache=cache).revise(rows(4))
    assert sum(len(c) for c in backend.calls) == 12
    backend.calls.clear()
    reviser(backend, cache=cache).revise(rows(4))
    assert backend.calls == []  # everything cached
    edited = CONSTITUTION.model_copy(
        update={
            "principles": (
                CONSTITUTION.principles[0],
                CONSTITUTION.principles[1].model_copy(update={"critique": "CRIT-RUDE, edited"}),
            )
        }
    )
    r = reviser(backend, cache=cache)
    r.constitution = edited
    out = r.revise(rows(4))
    uses_rude = sum(o["principle_ids"] == ["rude"] for o in out)
    assert 0 < uses_rude < 4
    assert Counter(len(c) for c in backend.calls) == Counter({uses_rude: 2})


def test_context_check_rejects_long_prompts(tiny_backend):
    r = Reviser(
        backend=tiny_backend, constitution=CONSTITUTION, params=SamplingParams(max_new_tokens=2000)
    )
    long_row = PromptRow(
        id="long", conversation=[{"role": "user", "content": "word " * 2500}], index=1, extra={}
    )
    keep, rejects = r.check_context([rows(1)[0], long_row])
    assert [k.id for k in keep] == ["r0"]
    assert rejects[0].id == "long" and "over context" in rejects[0].reason


def test_real_loop_on_tiny_model(tiny_backend):
    r = Reviser(
        backend=tiny_backend,
        constitution=CONSTITUTION,
        params=SamplingParams(max_new_tokens=8, temperature=1.0, seed=0),
    )
    out = r.revise(rows(3))
    assert len(out) == 3 and all(o["num_tokens"]["total"] > 0 for o in out)
    assert r.stats["revision"].requested == 3 and r.stats["initial"].generated_tokens > 0
