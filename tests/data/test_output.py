"""Dataset folders: splits, parquet shards, the card, and the Hub push (all offline)."""

from __future__ import annotations

import pytest
import yaml

from cai.data import DatasetCard, markdown_table, push_to_hub, split_rows, write_dataset
from cai.errors import CaiError

TOKEN = "hf_SECRETsecretSECRET123"


def _rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {
            "id": f"row-{i:04d}",
            "prompt": f"How do I do thing {i}?",
            "chosen": [
                {"role": "user", "content": f"How do I do thing {i}?"},
                {"role": "assistant", "content": "Safely, like this."},
            ],
            "rejected": [
                {"role": "user", "content": f"How do I do thing {i}?"},
                {"role": "assistant", "content": "Carelessly."},
            ],
            "trace": {
                "steps": [{"principle": "harm", "critique": "c", "revision": "r"}],
                "raw": {"critique": "Critique: c"},
            },
            "provenance": {"model": "tiny-random", "seed": i, "constitution_hash": "abc"},
            "score": 0.5 if i % 2 else 1,  # int and float mix: stored as float64
        }
        if i % 3 == 0:
            row["note"] = None
        if i % 4 == 0:
            del row["score"]  # an optional key absent from some rows
            row["extra"] = {}  # an empty dict: parquet cannot store a struct without fields
        rows.append(row)
    return rows


def _card() -> DatasetCard:
    return DatasetCard(
        title="Tiny CAI",
        summary="Prompts, critiques and revisions made with a tiny model.",
        sections={"Constitution": "Two principles.", "Provenance": "Made by tests."},
        tags=["cai", "rlaif"],
        extra_yaml={"cai": {"constitution_hash": "abc", "schema_version": 1}},
    )


def _ids(splits: dict[str, list[dict]]) -> dict[str, list[str]]:
    return {name: [r["id"] for r in rows] for name, rows in splits.items()}


# --- split_rows ---------------------------------------------------------------


def test_default_split_is_complete_disjoint_and_deterministic():
    rows = _rows(50)
    splits = split_rows(rows, test_size=0.2, seed=1)
    assert list(splits) == ["train", "test"]
    assert len(splits["test"]) == 10 and len(splits["train"]) == 40
    all_ids = splits["train"] + splits["test"]
    assert sorted(r["id"] for r in all_ids) == sorted(r["id"] for r in rows)
    assert _ids(split_rows(list(reversed(rows)), test_size=0.2, seed=1)) == _ids(splits)
    assert _ids(split_rows(rows, test_size=0.2, seed=2)) != _ids(splits)
    assert list(split_rows(rows, test_size=0, seed=1)) == ["train"]
    absolute = split_rows(rows, test_size=7, seed=1)
    assert (len(absolute["train"]), len(absolute["test"])) == (43, 7)


def test_cai_recipe_split_halves_train_and_test():
    rows = _rows(41)
    splits = split_rows(rows, test_size=0.25, seed=0, scheme="cai-recipe")
    assert list(splits) == ["train_sft", "test_sft", "train_prefs", "test_prefs"]
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train_sft": 15, "train_prefs": 15, "test_sft": 6, "test_prefs": 5}
    ids = [i for names in _ids(splits).values() for i in names]
    assert len(ids) == len(set(ids)) == 41
    default = split_rows(rows, test_size=0.25, seed=0)
    assert set(_ids(default)["test"]) == set(_ids(splits)["test_sft"] + _ids(splits)["test_prefs"])
    again = split_rows(rows, test_size=0.25, seed=0, scheme="cai-recipe")
    assert _ids(again) == _ids(splits)
    other = split_rows(rows, test_size=0.25, seed=5, scheme="cai-recipe")
    assert _ids(other) != _ids(splits)
    no_test = split_rows(rows, test_size=0, seed=0, scheme="cai-recipe")
    assert list(no_test) == ["train_sft", "train_prefs"]
    assert (len(no_test["train_sft"]), len(no_test["train_prefs"])) == (21, 20)


@pytest.mark.parametrize("test_size", [1.0, 1.5, -1, 51, "0.1", True])
def test_bad_test_size(test_size):
    with pytest.raises(CaiError, match="test_size"):
        split_rows(_rows(50), test_size=test_size, seed=0)


def test_split_needs_unique_ids_and_a_known_scheme():
    with pytest.raises(CaiError, match="unique"):
        split_rows(_rows(3) + _rows(1), test_size=0, seed=0)
    with pytest.raises(CaiError, match="str 'id'"):
        split_rows([{"prompt": "p"}], test_size=0, seed=0)
    with pytest.raises(CaiError, match="scheme"):
        split_rows(_rows(3), test_size=0, seed=0, scheme="h4")


# --- write_dataset --------------------------------------------------------------


def _load(out_dir, cache_dir):
    import datasets

    return datasets.load_dataset(str(out_dir), cache_dir=str(cache_dir))


def test_write_dataset_loads_with_load_dataset(tmp_path):
    out = tmp_path / "out"
    rows = _rows(30)
    splits = split_rows(rows, test_size=0.2, seed=0, scheme="cai-recipe")
    paths = write_dataset(out, splits, _card(), rows_per_shard=5)
    names = sorted(p.relative_to(out).as_posix() for p in paths)
    assert "README.md" in names and "data/train_sft-00000-of-00003.parquet" in names
    assert "data/test_prefs-00000-of-00001.parquet" in names
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(
        n.removeprefix("data/") for n in names if n != "README.md"
    )

    ds = _load(out, tmp_path / "cache")
    assert list(ds) == ["train_sft", "test_sft", "train_prefs", "test_prefs"]
    assert {k: ds[k].num_rows for k in ds} == {
        "train_sft": 12,
        "test_sft": 3,
        "train_prefs": 12,
        "test_prefs": 3,
    }
    by_id = {r["id"]: r for r in rows}
    for split in ds.values():
        for got in split:
            want = by_id[got["id"]]
            assert got["chosen"] == want["chosen"] and got["rejected"] == want["rejected"]
            assert got["trace"] == want["trace"] and got["provenance"] == want["provenance"]
            assert got["score"] == want.get("score")  # absent -> None
            assert got["note"] is None and got["extra"] is None  # {} is stored as None
    first = ds["train_sft"][0]["chosen"][0]
    assert set(first) == {"role", "content"}


def test_rerun_with_fewer_rows_leaves_no_stale_shards(tmp_path):
    out = tmp_path / "out"
    write_dataset(out, split_rows(_rows(40), test_size=0.25, seed=0), _card(), rows_per_shard=10)
    assert len(list((out / "data").glob("train-*"))) == 3
    (out / "data" / ".train-00000-of-00003.parquet.abc.tmp").write_bytes(b"half")  # a crash
    (out / "data" / "notes.txt").write_text("not ours")
    write_dataset(out, {"train": _rows(8)}, _card(), rows_per_shard=10)
    files = sorted(p.name for p in (out / "data").iterdir())
    assert files == ["notes.txt", "train-00000-of-00001.parquet"]
    ds = _load(out, tmp_path / "cache")
    assert list(ds) == ["train"] and ds["train"].num_rows == 8


def test_empty_split_and_bad_names(tmp_path):
    out = tmp_path / "out"
    write_dataset(out, {"train": _rows(4), "test": _rows(5)[4:]}, _card())
    paths = write_dataset(out, {"train": _rows(4), "test": []}, _card())  # datasets can't load it
    assert sorted(p.name for p in paths) == ["README.md", "train-00000-of-00001.parquet"]
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    ds = _load(out, tmp_path / "cache")
    assert list(ds) == ["train"] and ds["train"].num_rows == 4
    with pytest.raises(CaiError, match="no rows"):
        write_dataset(out, {"train": []}, _card())
    with pytest.raises(CaiError, match="split name"):
        write_dataset(out, {"train-x": _rows(2)}, _card())
    with pytest.raises(CaiError, match="'score'"):
        write_dataset(
            out, {"train": [{"id": "a", "score": 1}, {"id": "b", "score": "high"}]}, _card()
        )


def test_card_front_matter(tmp_path):
    out = tmp_path / "out"
    write_dataset(out, {"train": _rows(5), "test": _rows(7)[5:]}, _card())
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta["license"] == "apache-2.0" and meta["tags"] == ["cai", "rlaif"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "test", "path": "data/test-*"},
            ],
        }
    ]
    splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert splits == {"train": 5, "test": 2}
    assert meta["cai"] == {"constitution_hash": "abc", "schema_version": 1}
    assert body.index("# Tiny CAI") < body.index("| train | 5 |") < body.index("## Constitution")
    assert body.index("## Constitution") < body.index("## Provenance")
    with pytest.raises(CaiError, match="configs"):
        DatasetCard("t", "s", {}, [], extra_yaml={"configs": []}).render({"train": 1})


def test_markdown_table():
    table = markdown_table(["Principle", "Rows", "Note"], [["harm", 3, "a|b"], ["honesty", 12.5]])
    assert table.splitlines() == [
        "| Principle | Rows | Note |",
        "| --- | ---: | --- |",
        "| harm | 3 | a\\|b |",
        "| honesty | 12.5 |  |",
    ]


# --- push_to_hub ----------------------------------------------------------------


@pytest.fixture
def written(tmp_path):
    out = tmp_path / "out"
    write_dataset(out, split_rows(_rows(12), test_size=0.25, seed=0), _card())
    (out / "run.jsonl").write_text("journal, not uploaded\n")
    (out / "data" / ".train-00000-of-00001.parquet.x.tmp").write_bytes(b"a crashed write")
    return out


def _no_login(monkeypatch, tmp_path):
    import huggingface_hub

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def _forbid_network(monkeypatch):
    import huggingface_hub

    def boom(*args, **kwargs):
        raise AssertionError("network call in a dry run")

    for name in ("create_repo", "upload_folder", "whoami", "repo_info"):
        monkeypatch.setattr(huggingface_hub.HfApi, name, boom)


def test_push_dry_run_makes_no_call(tmp_path, written, monkeypatch):
    _forbid_network(monkeypatch)
    _no_login(monkeypatch, tmp_path)
    plan = push_to_hub(written, "me/tiny-cai", dry_run=True)
    assert plan["repo_id"] == "me/tiny-cai" and plan["private"] is False
    assert plan["token_source"] == "none"
    paths = [f["path"] for f in plan["files"]]
    assert paths == [
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
    ]
    assert all(f["size"] == (written / f["path"]).stat().st_size for f in plan["files"])
    plan = push_to_hub(written, "me/tiny-cai", token=TOKEN, private=True, dry_run=True)
    assert plan["token_source"] == "argument" and TOKEN not in repr(plan)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    plan = push_to_hub(written, "me/tiny-cai", dry_run=True)
    assert plan["token_source"] == "environment/huggingface_hub login" and TOKEN not in repr(plan)
    monkeypatch.delenv("HF_TOKEN")
    (tmp_path / "no-token").write_text(TOKEN)  # a saved `hf auth login`
    plan = push_to_hub(written, "me/tiny-cai", dry_run=True)
    assert plan["token_source"] == "environment/huggingface_hub login" and TOKEN not in repr(plan)


def test_push_sends_a_dataset_repo(written, monkeypatch):
    import huggingface_hub

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", self.token, repo_id, kwargs))

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", self.token, kwargs["repo_id"], kwargs))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    plan = push_to_hub(written, "me/tiny-cai", private=True, token=TOKEN)
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    (_, tok1, repo1, create), (_, tok2, repo2, upload) = calls
    assert tok1 == tok2 == TOKEN and repo1 == repo2 == "me/tiny-cai"
    assert create == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["repo_type"] == "dataset" and str(upload["folder_path"]) == str(written)
    assert upload["allow_patterns"] == ["README.md", "data/*"]
    assert plan["private"] is True and plan["token_source"] == "argument"
    assert TOKEN not in repr(plan)


def test_push_errors_are_clear_and_never_show_the_token(written, monkeypatch):
    import importlib

    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, Response

    # huggingface_hub's own HTTP client (httpx or httpx2, depending on its version).
    http = importlib.import_module(Response.__module__.split(".")[0])

    def unauthorized(self, repo_id, **kwargs):
        request = http.Request("POST", "https://huggingface.co/api/repos/create")
        response = Response(401, request=request)
        raise HfHubHTTPError(f"401 Unauthorized: bad token {TOKEN}", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", unauthorized)
    with pytest.raises(CaiError) as info:
        push_to_hub(written, "me/tiny-cai", token=TOKEN)
    message = str(info.value)
    assert TOKEN not in message and "hf auth login" in message and "HF_TOKEN" in message
    assert info.value.__cause__ is None

    def offline(self, repo_id, **kwargs):
        raise huggingface_hub.errors.OfflineModeIsEnabled("offline")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", offline)
    with pytest.raises(CaiError, match="me/tiny-cai") as info:
        push_to_hub(written, "me/tiny-cai", token=TOKEN)
    assert TOKEN not in str(info.value)


def test_push_without_a_token_or_a_dataset(tmp_path, written, monkeypatch):
    _forbid_network(monkeypatch)
    _no_login(monkeypatch, tmp_path)
    with pytest.raises(CaiError, match="hf auth login"):
        push_to_hub(written, "me/tiny-cai")
    with pytest.raises(CaiError, match="write the dataset first"):
        push_to_hub(tmp_path / "empty", "me/tiny-cai", dry_run=True)
    with pytest.raises(CaiError, match="repo id"):
        push_to_hub(written, "me/not a name!", dry_run=True)
