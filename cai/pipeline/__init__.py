"""``cai pipeline``: the whole CAI/RLAIF method from one recipe file (see ``recipe``)."""
