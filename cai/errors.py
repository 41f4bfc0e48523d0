"""The one exception type the CLI turns into a single red line."""


class CaiError(Exception):
    """An error a user can act on. Its message says what was wrong and what to do."""
