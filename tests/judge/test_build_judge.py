"""build_judge: one constructor of a Judge, on any engine.

``cai judge``, calibration and the GRPO/RLOO judge reward each run their judge through
the OpenAI-compatible backend against the loopback server. The server serves tiny-random
under a name that no local loader knows, so a path that ignored the engine setting (and
loaded the judge in-process) would fail, and each test also counts the server's requests.
"""

from __future__ import annotations

import json

import pytest

from cai.backends.base import SamplingParams
from cai.config import BackendConfig, CalibrateConfig, JudgeConfig, RewardSpec, load_config
from cai.constitution import load_constitution
from cai.jobs import RowJournal
from cai.judge import (
    JudgeReward,
    PairItem,
    build_judge,
    build_reward,
    reward_from_spec,
    run_calibration_from_config,
)
from tests.openai_server import engine, serve_as

pytest.importorskip("httpx")

SERVED = "served-judge"
HI = [{"role": "user", "content": "Can you help me with my homework?"}]
KIND, RUDE = "Of course, what is the question?", "No. Do it yourself, idiot."


@pytest.fixture(scope="module")
def server():
    with serve_as(SERVED) as s:
        yield s


class NotABackend:
    """Stands in for a ready backend; build_judge must not call it."""

    name, model_name = "none", "given"


def test_build_judge_passes_every_setting():
    judge = build_judge(
        backend=NotABackend(),
        constitution=load_constitution("hhh"),
        mode="cot",
        both_orders=False,
        principles="all",
        seed=7,
        cot_clamp=False,
        max_new_tokens=9,
        prompts_dir="some/dir",
    )
    assert isinstance(judge.backend, NotABackend) and judge.constitution.name == "hhh"
    assert (judge.mode, judge.both_orders, judge.principles, judge.seed) == ("cot", False, "all", 7)
    assert judge.cot_clamp is None and judge.prompts_dir == "some/dir"
    assert judge.params == SamplingParams(max_new_tokens=9, temperature=0.0)
    default = build_judge(backend=NotABackend(), principles="3")
    assert default.principles == 3 and default.cot_clamp == (0.4, 0.6)
    assert default.constitution.name == "harmless" and default.params.max_new_tokens == 256


def test_build_judge_runs_on_the_engine_it_is_given(server):
    before = server.requests
    judge = build_judge(BackendConfig.model_validate(engine(server)))
    assert (judge.backend.name, judge.backend.model_name) == ("openai", SERVED)
    [result] = judge.judge([PairItem("p1", HI, KIND, RUDE)])
    assert 0.0 < result.p_a < 1.0 and [o["order"] for o in result.orders] == ["ab", "ba"]
    assert server.requests - before == 2  # one option scoring per order
    assert set(server.paths[before:]) == {"/v1/chat/completions"}


def pairs_file(path) -> str:
    rows = [{"id": f"r{i}", "prompt": HI[0]["content"] + f" ({i})", "chosen": KIND,
             "rejected": RUDE} for i in range(3)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cai_judge_runs_on_an_openai_judge(cai, server, tmp_path):
    """`cai judge --config` whose `judge` is a server: every pair is judged there."""
    out = tmp_path / "prefs"
    config = tmp_path / "judge.yaml"
    settings = {"prompts": pairs_file(tmp_path / "pairs.jsonl"), "output": str(out),
                "judge": engine(server)}  # fmt: skip
    config.write_text(json.dumps(settings))  # JSON is YAML
    before = server.requests
    res = cai("judge", "--config", config)
    assert res.code == 0, res.err
    assert server.requests - before == 3 * 2  # three pairs, both orders
    rows, _ = RowJournal(out / "rows.jsonl").read()
    assert len(rows) == 3 and all(0.0 < r["p_chosen"] < 1.0 for r in rows)
    assert {(r["provenance"]["judge_backend"], r["provenance"]["judge_model"]) for r in rows} == {
        ("openai", SERVED)
    }


def gold_file(path) -> str:
    rows = [{"prompt": f"Question {i}: can you help me?", "chosen": KIND, "rejected": RUDE}
            for i in range(3)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_calibration_runs_on_an_openai_judge(server, tmp_path):
    cfg = load_config(CalibrateConfig, None, {
        "gold": gold_file(tmp_path / "gold.jsonl"), "output": tmp_path / "report",
        "verbatim": False, "judge": engine(server)})  # fmt: skip
    before = server.requests
    report = run_calibration_from_config(cfg)
    assert server.requests - before == 3 * 2  # three gold pairs, both orders
    assert report["n"] == 3 and report["judge_model"] == SERVED
    assert json.loads((tmp_path / "report" / "report.json").read_text())["n"] == 3


def test_calibration_needs_a_gold_file():
    from cai.errors import CaiError

    with pytest.raises(CaiError, match="'gold'"):
        load_config(CalibrateConfig, None, {"judge": "tiny-random"})


def test_the_judge_reward_runs_on_an_openai_judge(server):
    """The reward of `cai train grpo/rloo` (both build it with ``build_reward(cfg.rewards,
    ...)``) with `rewards: [{kind: judge, judge: {backend: openai, ...}}]`: called as trl
    calls it, it judges on the server."""
    spec = RewardSpec.model_validate({"kind": "judge", "judge": engine(server)})
    reward = reward_from_spec(spec, policy="tiny-random")
    assert isinstance(reward, JudgeReward) and reward.judge.backend.name == "openai"
    before = server.requests
    values = reward(prompts=[HI, HI], completions=[KIND, RUDE], reference=[RUDE, KIND])
    assert server.requests - before == 2 * 2  # two completions, both orders
    assert len(values) == 2 and all(-1.0 < v < 1.0 for v in values)
    # The two pairs are the same pair in swapped roles: the rewards are opposite.
    assert values[0] == pytest.approx(-values[1], abs=1e-6)
    # Through the trainers' own config and build_reward, too.
    from cai.train.config import OnlineRunConfig

    cfg = OnlineRunConfig(model="tiny-random", rewards=[{"kind": "judge", "judge": engine(server)}])
    combined = build_reward(cfg.rewards, policy=cfg.model)
    before = server.requests
    assert combined(prompts=[HI], completions=[KIND], reference=[RUDE]) == pytest.approx(values[:1])
    assert server.requests - before == 2


def test_a_judge_config_takes_a_bare_model_name():
    cfg = JudgeConfig(judge="tiny-random", policy="smollm2-135m")
    assert cfg.judge == BackendConfig(model="tiny-random")
    assert cfg.policy == BackendConfig(model="smollm2-135m")


def test_build_judge_is_the_only_constructor_of_a_judge():
    """Outside tests, only cai/judge/build.py calls ``Judge(...)``: every judge gets its
    engine from a ``BackendConfig``."""
    import ast

    from tests.conftest import REPO

    callers = set()
    for path in sorted((REPO / "cai").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                if name == "Judge":
                    callers.add(path.relative_to(REPO).as_posix())
    assert callers == {"cai/judge/build.py"}
