"""The one batch-job skeleton: revisions, the judge, best-of-n and evaluate's answers.

``BatchJob.run`` is the whole job, in this order::

    check     refuse an output that overlaps the input, and an unfinished cai input
    lock      hold the output folder for the whole job (``output_lock``)
    read      the input rows and their rejects, then this shard's rows (``select_shard``)
    screen    cheap checks before any model loads (rows that cannot run become rejects)
    prepare   load the models; reject rows that cannot run on them
              (no rows left after either: ``fail_without_rows``)
    run       ``run_chunks`` with the job's ``process``, under ``fingerprint(provenance,
              settings)``: resumable, content-keyed, failed rows to ``failed.jsonl``
    summary   the job's own numbers
    gate      drop rows that fail the job's checks into the rejects (quality)
    write     split the rows, write the dataset and its card, ``finish_run``, push

A job is a subclass that fills in its own parts: ``read``, ``prepare``, ``provenance``,
``process``, ``summary`` and ``card`` (and ``screen``, ``gate``, ``splits``, ``tokens``, ``close``
where it needs them). Everything else is the same for every job.
"""

from __future__ import annotations

from pathlib import Path

from cai.data import DatasetCard, PromptRow, Reject, push_to_hub, split_rows, write_dataset
from cai.jobs.chunks import (
    JobResult,
    check_input_complete,
    check_not_overlapping,
    fail_without_rows,
    finish_run,
    output_lock,
    run_chunks,
    select_shard,
)
from cai.jobs.provenance import fingerprint


class BatchJob:
    """A batch job over prompt rows, run by ``run()``; subclasses give its own parts.

    ``cfg`` is the job's config. The skeleton reads these of its fields when present:
    ``output``, ``prompts`` (the input, checked before anything loads), ``allow_partial``,
    ``num_shards``/``shard_index``, ``chunk_size``, ``concurrent_chunks``, ``test_size``,
    ``split_scheme``, ``sampling.seed`` (the split's seed), ``push_to_hub``/``private``.
    """

    desc = "rows"
    """The progress bar's label."""
    chunk_size = 64
    """Rows per chunk when the config has no ``chunk_size``."""
    writes_dataset = True
    """Write ``data/`` and the card, finish the run and push; ``False`` keeps only the
    journal (``rows.jsonl``), for a job whose rows another step consumes."""

    def __init__(self, cfg, *, output: Path | None = None) -> None:
        self.cfg = cfg
        self.output = Path(output if output is not None else cfg.output)
        self.result: JobResult | None = None
        """The ``run_chunks`` result, once the rows have run."""

    # --- the job's own parts --------------------------------------------------------------

    @property
    def source(self) -> str | None:
        """The input path or name, checked against the output; ``None`` checks nothing."""
        return getattr(self.cfg, "prompts", None)

    @property
    def allow_partial(self) -> bool:
        return bool(getattr(self.cfg, "allow_partial", False))

    def read(self) -> tuple[list[PromptRow], list[Reject]]:
        """The input rows and the rejects of reading them."""
        raise NotImplementedError

    def screen(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        """Rows that can run and rejects, checked before any model loads."""
        return rows, []

    def prepare(self, rows: list[PromptRow]) -> tuple[list[PromptRow], list[Reject]]:
        """Load the models; return the rows that fit them and rejects for the others."""
        return rows, []

    def provenance(self) -> dict:
        """Every output row's ``provenance`` (``cai.jobs.provenance``); called after
        ``prepare``."""
        raise NotImplementedError

    def settings(self) -> dict:
        """The settings recorded in ``run.json`` and, without the run-only fields, in the
        fingerprint."""
        return self.cfg.model_dump(mode="json")

    def process(self, chunk: list[PromptRow]) -> list[dict]:
        """One output row (with ``id``) per input row of ``chunk``."""
        raise NotImplementedError

    def tokens(self) -> int | None:
        """Tokens generated so far, for the progress bar; ``None`` if not counted."""
        return None

    def summary(self, result: JobResult, rejects: list[Reject]) -> dict:
        """The job's numbers, stored in ``run.json`` and returned by ``run``."""
        return {
            "rows": len(result.rows),
            "resumed_rows": result.resumed,
            "processed_rows": result.processed,
            "changed_rows": result.changed,
            "rejected_rows": len(rejects),
            "seconds": round(result.seconds, 2),
        }

    def splits(self, rows: list[dict], summary: dict) -> dict[str, list[dict]]:
        """The dataset's splits (``summary`` may record what splitting found)."""
        cfg = self.cfg
        return split_rows(
            rows,
            test_size=cfg.test_size,
            seed=cfg.sampling.seed,
            scheme=getattr(cfg, "split_scheme", "default"),
        )

    def gate(self, rows: list[dict], summary: dict) -> tuple[list[dict], list[Reject]]:
        """The rows that go into the dataset, and rejects for the rest (a quality gate);
        the summary is of every row, before the gate."""
        return rows, []

    def card(self, summary: dict) -> DatasetCard:
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``prepare`` opened (caches); called however the job ends."""

    # --- the skeleton ------------------------------------------------------------------

    def run(self) -> dict:
        """Run the whole job; return the summary that is also stored in ``run.json``.

        Before any model loads: the output must be a folder that does not overlap the
        input, an unfinished cai input is refused (unless ``allow_partial``), and the
        output folder is locked against a second run for the whole job."""
        if self.source is not None:
            check_not_overlapping(self.source, self.output)
            check_input_complete(self.source, self.allow_partial)
        with output_lock(self.output):
            try:
                return self._run()
            finally:
                self.close()

    def _run(self) -> dict:
        cfg = self.cfg
        rows, rejects = self.read()
        rows = select_shard(rows, getattr(cfg, "num_shards", 1), getattr(cfg, "shard_index", 0))
        total = len(rows) + len(rejects)
        for step in (self.screen, self.prepare):
            rows, more = step(rows)
            rejects += more
            if not rows:
                fail_without_rows(self.output, total, rejects)
        settings = self.settings()
        self.result = result = run_chunks(
            rows,
            self.process,
            self.output,
            fingerprint=fingerprint(self.provenance(), settings),
            settings=settings,
            chunk_size=getattr(cfg, "chunk_size", self.chunk_size),
            workers=getattr(cfg, "concurrent_chunks", 1),
            desc=self.desc,
            tokens=self.tokens,
        )
        summary = self.summary(result, rejects)
        if not self.writes_dataset:
            return summary
        rows, dropped = self.gate(result.rows, summary)
        rejects = rejects + dropped
        if not rows:  # the gate dropped every row: keep the summary that says why
            finish_run(self.output, rejects, summary, complete=False)
            fail_without_rows(self.output, total, rejects)
        splits = self.splits(rows, summary)
        write_dataset(self.output, splits, self.card(summary))
        finish_run(self.output, rejects, summary)
        if getattr(cfg, "push_to_hub", None):
            summary["hub"] = push_to_hub(self.output, cfg.push_to_hub, private=cfg.private)
        return summary
