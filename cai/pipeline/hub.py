"""``cai pipeline run --push-to-hub ORG``: the datasets and the final model, cross-linked.

Three repos: ``ORG/<name>-revisions`` (SFT data), ``ORG/<name>-preferences`` (AI
feedback) and ``ORG/<name>-<final stage>`` (the model). Before the push, each card gets a
"Related repos" section that links the other two, so a reader can go from the model to
the data it was trained on and back.
"""

from __future__ import annotations

from pathlib import Path

from cai._util import write_text_atomic
from cai.data import push_to_hub
from cai.pipeline.recipe import Recipe
from cai.pipeline.stages import model_stages, out

MARK = "\n## Related repos\n"


def repos(recipe: Recipe, org: str) -> dict[str, tuple[str, str]]:
    """Stage -> (repo id, repo type) for what this recipe made."""
    found: dict[str, tuple[str, str]] = {}
    if "revisions" in recipe.run:
        found["revisions"] = (f"{org}/{recipe.name}-revisions", "dataset")
    if "judge" in recipe.run:
        found["judge"] = (f"{org}/{recipe.name}-preferences", "dataset")
    models = model_stages(recipe)
    if models:
        found[models[-1]] = (f"{org}/{recipe.name}-{models[-1]}", "model")
    return found


def _url(repo_id: str, repo_type: str) -> str:
    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"https://huggingface.co/{prefix}{repo_id}"


def link_cards(recipe: Recipe, org: str) -> None:
    """Add (or replace) each card's section linking the other repos of this run."""
    made = repos(recipe, org)
    for stage, (repo_id, _) in made.items():
        card = out(recipe, stage) / "README.md"
        text = card.read_text() if card.is_file() else f"# {repo_id}\n"
        text = text.split(MARK)[0].rstrip() + "\n"
        links = [f"- [{rid}]({_url(rid, kind)}): the {'model' if kind == 'model' else s} "
                 f"{'trained by' if kind == 'model' else 'stage of'} the `{recipe.name}` "
                 "cai pipeline" for s, (rid, kind) in made.items() if s != stage]  # fmt: skip
        write_text_atomic(card, text + MARK + "\n" + "\n".join(links) + "\n")


def push_all(recipe: Recipe, org: str, private: bool = False, dry_run: bool = False) -> list[dict]:
    """Link the cards, then push each repo; returns the push plans (never the token)."""
    link_cards(recipe, org)
    return [
        push_to_hub(
            Path(out(recipe, stage)), repo_id, private=private, dry_run=dry_run, repo_type=kind
        )  # fmt: skip
        for stage, (repo_id, kind) in repos(recipe, org).items()
    ]
