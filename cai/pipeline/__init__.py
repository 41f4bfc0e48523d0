"""``cai pipeline``: the whole CAI/RLAIF method from one recipe file (see ``recipe``).

``plan`` keys and checks the stages, ``run`` runs them, ``report`` writes the report and
``hub`` pushes the datasets and the final model. No module imports one above it here:
recipe <- stages <- plan <- report <- run.
"""

from __future__ import annotations

from cai.pipeline.hub import push_all
from cai.pipeline.plan import StagePlan, check_plans, plan
from cai.pipeline.recipe import Recipe, load_recipe
from cai.pipeline.run import run_pipeline, status_lines

__all__ = [
    "Recipe",
    "StagePlan",
    "check_plans",
    "load_recipe",
    "plan",
    "push_all",
    "run_pipeline",
    "status_lines",
]
