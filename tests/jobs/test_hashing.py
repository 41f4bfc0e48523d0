"""One way to hash data (``canonical_hash``), one schema version, one fingerprint."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

from cai.data import content_id
from cai.jobs import (
    SCHEMA_VERSION,
    cache_key,
    canonical_hash,
    canonical_json,
    fingerprint,
    provenance,
    row_sha256,
)

CAI = Path(__file__).resolve().parents[2] / "cai"

# sha256 calls that hash something other than data for an id, a fingerprint or a key: file
# bytes and template sources (hashes of bytes), seeds (changing them would change the
# draws) and shard placement (changing it would move the rows of existing sharded runs).
SHA256_ALLOWED = {
    "cai/_util/hashing.py": 2,  # canonical_hash itself, and file_sha256 of a file's bytes
    "cai/jobs/chunks.py": 1,  # shard_of
    "cai/backends/decode.py": 1,  # a sample's seed
    "cai/constitution/schema.py": 1,  # row_rng's seed
    "cai/prompts.py": 1,  # template_hash of the template's source
    "cai/models.py": 1,  # config.json's bytes
}


def test_canonical_hash_is_sha256_of_sorted_compact_raw_unicode_json():
    obj = {"b": [1, 2], "a": "é ü"}
    text = '{"a":"é ü","b":[1,2]}'
    assert canonical_json(obj) == text
    assert canonical_hash(obj) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert canonical_hash({"a": "é ü", "b": [1, 2]}) == canonical_hash(obj)
    assert canonical_hash(obj, 12) == canonical_hash(obj)[:12]
    assert canonical_hash({"a": 1}) != canonical_hash({"a": "1"})
    assert canonical_hash({"p": Path("x/y")}) == canonical_hash({"p": "x/y"})


def test_every_hash_of_data_goes_through_canonical_hash():
    row = {"id": "r1", "prompt": [{"role": "user", "content": "Grüße"}], "n": 2}
    assert row_sha256(row) == canonical_hash(row)
    assert cache_key(stage="answer", model="m", conv=row["prompt"]) == canonical_hash(
        {"stage": "answer", "model": "m", "conv": row["prompt"]}
    )
    # content ids keep the value they had before canonical_hash: resumes still match
    canon = json.dumps(row["prompt"], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    old = "p-" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:12]
    assert content_id(row["prompt"]) == old == "p-" + canonical_hash(row["prompt"], 12)


def _sha256_calls(path: Path) -> int:
    n = 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "sha256") or (
                isinstance(f, ast.Name) and f.id == "sha256"
            ):
                n += 1
    return n


def test_no_other_sha256_call_in_cai():
    found = {
        str(p.relative_to(CAI.parent)): n
        for p in sorted(CAI.rglob("*.py"))
        if (n := _sha256_calls(p))
    }
    extra = {f: n for f, n in found.items() if n > SHA256_ALLOWED.get(f, 0)}
    assert not extra, f"hash data with cai.jobs.canonical_hash, not hashlib.sha256: {extra}"


def test_schema_version_is_declared_once():
    declared = [
        str(p.relative_to(CAI.parent))
        for p in CAI.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id == "SCHEMA_VERSION"
    ]
    assert declared == ["cai/jobs/provenance.py"]


def test_provenance_leads_with_the_schema_and_cai_versions():
    from cai import __version__

    p = provenance(model="m", seed=3)
    assert p == {"schema_version": SCHEMA_VERSION, "cai_version": __version__, "model": "m",
                 "seed": 3}  # fmt: skip
    assert list(p)[:2] == ["schema_version", "cai_version"]


def test_fingerprint_follows_what_shapes_rows_and_ignores_where_they_go():
    prov = provenance(model="m")
    settings = {"rounds": 1, "output": "out/a", "shard_index": 0, "num_shards": 2,
                "chunk_size": 8, "push_to_hub": None, "allow_partial": False}  # fmt: skip
    fp = fingerprint(prov, settings)
    assert len(fp) == 16
    assert fingerprint(prov, dict(settings)) == fp
    # shards of one run, another output folder or chunk size: the same run
    same = {**settings, "output": "out/b", "shard_index": 1, "chunk_size": 3, "allow_partial": True}
    assert fingerprint(prov, same) == fp
    # a setting or a provenance field that shapes rows: another run
    assert fingerprint(prov, {**settings, "rounds": 2}) != fp
    assert fingerprint(provenance(model="m2"), settings) != fp
