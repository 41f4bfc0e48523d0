"""RLAIF: pairwise and k-wise AI feedback, calibration on gold labels, the judge as a reward."""

from __future__ import annotations

from cai.judge.build import build_judge
from cai.judge.calibrate_run import run_calibration, run_calibration_from_config
from cai.judge.calibration import summary_table
from cai.judge.pairwise import Judge, PairItem, PairResult
from cai.judge.refusal import JudgeRefusal, judge_refusals, refusal_probabilities
from cai.judge.reward import JudgeReward, build_reward, reward_from_spec
from cai.judge.run import JudgeJob, run_judge

__all__ = [
    "build_judge",
    "Judge",
    "JudgeJob",
    "JudgeRefusal",
    "JudgeReward",
    "build_reward",
    "reward_from_spec",
    "PairItem",
    "PairResult",
    "judge_refusals",
    "refusal_probabilities",
    "run_calibration",
    "run_calibration_from_config",
    "run_judge",
    "summary_table",
]
