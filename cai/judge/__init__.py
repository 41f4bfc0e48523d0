"""RLAIF: pairwise and k-wise AI feedback, calibration on gold labels, the judge as a reward."""

from __future__ import annotations

from cai.judge.build import build_judge, scoring_settings
from cai.judge.calibrate_all import all_modes_table, run_all_modes
from cai.judge.calibrate_run import run_calibration, run_calibration_from_config
from cai.judge.calibration import summary_table
from cai.judge.ensemble import Ensemble
from cai.judge.lmscore import pointwise_scores
from cai.judge.pairwise import MODES, Judge, PairItem, PairResult
from cai.judge.refusal import JudgeRefusal, judge_refusals, refusal_probabilities
from cai.judge.reward import (
    JudgeLabeller,
    JudgeReward,
    build_labeller,
    build_reward,
    reward_from_spec,
)
from cai.judge.run import JudgeJob, run_judge

__all__ = [
    "MODES",
    "all_modes_table",
    "build_judge",
    "Ensemble",
    "Judge",
    "JudgeJob",
    "JudgeRefusal",
    "JudgeLabeller",
    "JudgeReward",
    "build_labeller",
    "build_reward",
    "reward_from_spec",
    "PairItem",
    "pointwise_scores",
    "PairResult",
    "judge_refusals",
    "refusal_probabilities",
    "run_all_modes",
    "run_calibration",
    "run_calibration_from_config",
    "run_judge",
    "scoring_settings",
    "summary_table",
]
