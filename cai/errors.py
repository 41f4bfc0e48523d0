"""The one exception type the CLI turns into a single red line."""


class CaiError(Exception):
    """An error a user can act on. Its message says what was wrong and what to do."""


class BackendError(CaiError):
    """A model server failed a request for good, after its retries.

    Batch jobs record the rows it hit as failed and go on; a rerun retries them.
    """
