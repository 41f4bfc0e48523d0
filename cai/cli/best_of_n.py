"""`cai best-of-n`: wiring only; the work is in cai.best_of_n."""

from __future__ import annotations

import typer

from cai.cli.options import ConfigFlags, config_command
from cai.cli.train import reward_flags
from cai.config import BestOfNConfig

BEST_OF_N = ConfigFlags(
    BestOfNConfig,
    prefixes={"policy": "policy-", "sampling": ""},
    names={"policy.model": ("--policy-model", "--policy")},
    extras=(reward_flags,),
)
"""`cai best-of-n`: a flag per field, the policy's engine under --policy-*, sampling
unprefixed, and the reward flags of `cai train grpo`."""


@config_command(BEST_OF_N)
def best_of_n(cfg: BestOfNConfig) -> None:
    """Rejection sampling (Llama 2): sample N answers per prompt, keep the highest-reward
    one, and write an SFT dataset. Resumable like generate-revisions."""
    from cai.best_of_n import run_best_of_n

    s = run_best_of_n(cfg)
    typer.echo(
        f"best-of-{cfg.n}: {s['rows']} rows, mean best reward {s['mean_best_reward']} "
        f"(mean sample {s['mean_sample_reward']}); written to {cfg.output}"
    )
