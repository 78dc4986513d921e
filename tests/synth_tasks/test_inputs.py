"""Bad input: every problem names the file (and the row where there is one); good rows survive."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth_tasks.inputs import InputError, list_input_files, read_inputs, read_text_records
from synth_tasks.storage import Store


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"file://{path}"


def test_good_jsonl_reads_ids_and_rows(store, tmp_path):
    url = _write(tmp_path / "in" / "a.jsonl", b'{"id": "x", "text": "one"}\n\n{"text": "two"}\n')
    good, bad = read_text_records(store, url, "text", "id")
    assert [(r.id, r.text, r.row) for r in good] == [("x", "one", 1), ("a.jsonl#3", "two", 3)]
    assert bad == []


def test_bad_rows_fail_alone_with_file_and_row_named(store, tmp_path):
    lines = [b'{"id": "ok1", "text": "fine"}', b'{"id": "bad-bytes", "text": "caf\xe9"}', b'{not json',
             b'["a list"]', b'{"id": "num", "text": 42}', b'{"id": "nocol", "body": "x"}',
             b'{"id": "ok1", "text": "dup"}', b'{"id": "ok2", "text": "also fine"}']
    url = _write(tmp_path / "in" / "mixed.jsonl", b"\n".join(lines))
    good, bad = read_text_records(store, url, "text", "id")
    assert [r.id for r in good] == ["ok1", "ok2"]
    errors = {b.id: b.error for b in bad}
    assert errors["mixed.jsonl#2"].startswith(f"bad_row: {url} row 2: not UTF-8")
    assert errors["mixed.jsonl#3"].startswith(f"bad_row: {url} row 3: invalid JSON")
    assert errors["mixed.jsonl#4"] == f"bad_row: {url} row 4: expected a JSON object, got list"
    assert errors["num"] == f"bad_type: {url} row 5: 'text' is int, not text"
    assert errors["nocol"] == f"missing_column: {url} row 6: no column 'text'"
    assert errors["mixed.jsonl#7"] == f"duplicate_id: {url} row 7: id 'ok1' seen before"
    assert len(good) + len(bad) == len(lines)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.jsonl", b"", "file is empty"),
        ("blank.jsonl", b"\n \n", "file is empty"),
        ("corrupt.parquet", b"PAR1 this is not parquet at all", "not a readable Parquet file"),
        ("nocolumn.jsonl", b'{"body": "x"}\n{"body": "y"}\n', "no column 'text' in any row"),
        ("notes.txt", b"hello", "unsupported input format"),
    ],
)
def test_whole_file_problems_name_the_file(store, tmp_path, name, data, message):
    url = _write(tmp_path / "in" / name, data)
    with pytest.raises(InputError) as err:
        read_text_records(store, url, "text", "id")
    assert str(err.value).startswith(url) and message in str(err.value)


def test_parquet_missing_column_names_file_and_columns(store, tmp_path):
    path = tmp_path / "in" / "t.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"body": ["a"]}), path)
    with pytest.raises(InputError, match=r"t\.parquet: no column 'text' \(columns: \['body'\]\)"):
        read_text_records(store, f"file://{path}", "text", None)


def test_parquet_rows(store, tmp_path):
    path = tmp_path / "in" / "t.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"doc": ["d1", "d2"], "text": ["alpha", "beta"]}), path)
    good, bad = read_text_records(store, f"file://{path}", "text", "doc")
    assert [(r.id, r.text, r.row) for r in good] == [("d1", "alpha", 1), ("d2", "beta", 2)] and bad == []


def test_listing_files_dirs_and_globs(store, tmp_path):
    for name in ("a.jsonl", "b.parquet", "c.txt"):
        _write(tmp_path / "in" / name, json.dumps({"text": "x"}).encode())
    assert [u.rsplit("/", 1)[1] for u in list_input_files(store, f"file://{tmp_path}/in")] == ["a.jsonl", "b.parquet"]
    assert len(list_input_files(store, f"file://{tmp_path}/in/*.jsonl")) == 1
    with pytest.raises(InputError, match="no input files match"):
        list_input_files(store, f"file://{tmp_path}/nothing/*.jsonl")


def test_yaml_lists_read_with_extra_fields_and_name_bad_items(store, tmp_path):
    url = _write(tmp_path / "in" / "seeds.yaml", (
        b"- id: s1\n  domain: math\n  instruction: Add two numbers.\n"
        b"- just a string\n"
        b"- id: s3\n  instruction: Name a prime.\n"))
    good, bad = read_text_records(store, url, "instruction", "id", extra_columns=("domain",))
    assert [(r.id, r.row, r.fields) for r in good] == [("s1", 1, {"domain": "math"}), ("s3", 3, {})]
    assert [b.error for b in bad] == [f"bad_row: {url} row 2: expected a mapping, got str"]


@pytest.mark.parametrize("content, message", [
    (b"- id: a\n  instruction: [unclosed\n", "invalid YAML at line 3"),
    (b"seeds:\n  - id: a\n", "expected a YAML list of records, got dict"),
])
def test_unusable_yaml_fails_the_file_naming_it(store, tmp_path, content, message):
    url = _write(tmp_path / "in" / "bad.yaml", content)
    with pytest.raises(InputError, match=f"bad.yaml: {message}"):
        read_text_records(store, url, "instruction", "id")


def test_reading_many_files_fails_bad_ones_and_ids_reused_across_files(store, tmp_path):
    from synth_tasks.ledger import StageLedger

    good = _write(tmp_path / "in" / "a.jsonl", b'{"id": "x", "text": "one"}\n{"id": "y", "text": "two"}\n')
    reused = _write(tmp_path / "in" / "b.jsonl", b'{"id": "x", "text": "again"}\n{"id": "z", "text": "three"}\n')
    broken = _write(tmp_path / "in" / "c.parquet", b"PAR1 not parquet")
    ledger = StageLedger("prepare", 0)
    records, failed = read_inputs(store, [good, reused, broken], ledger, "text", "id")
    assert [r.id for r in records] == ["x", "y", "z"] and [r.text for r in records][0] == "one"
    assert failed == [f"{reused}#1", broken]
    errors = {r["record_id"]: r["error"] for r in ledger.rows}
    assert errors[f"{reused}#1"] == f"duplicate_id: {reused} row 1: id 'x' used in another file"
    assert errors[broken].startswith(f"bad_file: {broken}: not a readable Parquet file")


def test_inputs_outside_the_allowed_roots_are_refused_naming_path_and_roots(tmp_path):
    from synth_tasks.inputs import InputError, list_input_files
    from synth_tasks.storage import Store

    store = Store("file:///")
    allowed, outside = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "ok.jsonl").write_text('{"text": "x"}\n')
    (outside / "key.jsonl").write_text('{"text": "secret"}\n')
    (allowed / "link.jsonl").symlink_to(outside / "key.jsonl")
    roots = (str(allowed),)
    assert list_input_files(store, f"file://{allowed}/ok.jsonl", allowed_roots=roots) == [f"file://{allowed}/ok.jsonl"]
    for asked in (f"file://{outside}/key.jsonl", f"file://{allowed}/../secret/key.jsonl", f"file://{allowed}/link.jsonl",
                  f"file://{tmp_path}/*/*.jsonl", "file:///etc/passwd"):
        with pytest.raises(InputError, match="outside the allowed input roots") as err:
            list_input_files(store, asked, allowed_roots=roots)
        assert str(allowed) in str(err.value)
    with pytest.raises(InputError, match="not allowed in remote paths"):
        list_input_files(store, "s3://bucket/inputs/../private/x.jsonl", allowed_roots=("s3://bucket/inputs",))


def test_only_the_methods_file_types_are_read(tmp_path):
    from synth_tasks.inputs import InputError, list_input_files
    from synth_tasks.storage import Store

    cfg = tmp_path / "airflow.cfg"
    cfg.write_text("[core]\nfernet_key = secret\n")
    with pytest.raises(InputError, match=r"airflow.cfg: not an input file of this method \(expected \*\*.md\)|"
                                         r"expected \*.md"):
        list_input_files(Store("file:///"), f"file://{cfg}", in_folder=("**/*.md",))


def test_the_default_roots_are_the_shipped_data_the_data_roots_inputs_and_the_deployments(monkeypatch):
    from synth_tasks.environment import allowed_input_roots
    from synth_tasks.prompts import include_dir

    monkeypatch.setenv("SYNTH_INPUT_ROOTS", "/mnt/corpora, s3://lake/raw")
    assert allowed_input_roots("s3://b/stage") == (str(include_dir()), "s3://b/stage/inputs", "/mnt/corpora",
                                                   "s3://lake/raw")


def test_a_folders_file_types_match_without_regard_to_case(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("A.JSONL", "b.jsonl", "c.Parquet", "notes.txt", "sub/d.jsonl"):
        (tmp_path / name).write_text("{}\n")
    files = list_input_files(Store("file:///"), f"file://{tmp_path}")
    assert [f.rsplit("/", 1)[1] for f in files] == ["A.JSONL", "b.jsonl", "c.Parquet"]
    deep = list_input_files(Store("file:///"), f"file://{tmp_path}", in_folder=("**/*.jsonl",))
    assert [f.removeprefix(f"file://{tmp_path}/") for f in deep] == ["A.JSONL", "b.jsonl", "sub/d.jsonl"]
