"""The dataset card and plots the export writes beside the final files: the splits load with the
Hugging Face loader as the card's own ``configs`` say, the card's header and numbers are the
summary's, and every plot is a valid PNG of the fixed size, also with nothing filtered, an empty
split, or clusters to show."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth_tasks.card import (PLOT_PIXELS, build_card, endpoint_host, hf_features, parse_card_header,
                              without_userinfo, write_plots)
from synth_tasks.config import MethodConfig
from synth_tasks.method import Export, Method, Stage
from synth_tasks.pipeline import run_method
from tests.fixtures.methods.uppercase import METHOD as UPPERCASE, UppercaseConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _inputs(tmp_path: Path) -> Path:
    """Four input files (four groups: the split puts records of one file on one side); one text per
    file is too short for the uppercase method and is filtered."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for doc in "abcd":
        rows = [{"id": f"{doc}1", "text": f"hello {doc} world"}, {"id": f"{doc}2", "text": "hi"},
                {"id": f"{doc}3", "text": f"some longer synthetic text about {doc}"}]
        (folder / f"{doc}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _run_uppercase(layout, tmp_path, **params) -> dict:
    folder = _inputs(tmp_path)
    cfg = UppercaseConfig(input_path=str(folder), **({"train_ratio": 0.5} | params))
    result = run_method(UPPERCASE, cfg, layout, f"file://{folder}")["export"]
    return layout.store.read_json(result["summary"])


def _local(url: str) -> Path:
    assert url.startswith("file://")
    return Path(url[len("file://"):])


def _card(layout) -> tuple[dict, str]:
    text = (_local(layout.final_dir) / "README.md").read_text()
    return parse_card_header(text), text


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must follow the signature."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def _assert_valid_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert _png_size(data) == PLOT_PIXELS, path.name
    pixels = matplotlib.image.imread(path)  # decodes the whole image, not just its header
    assert pixels.shape[:2] == (PLOT_PIXELS[1], PLOT_PIXELS[0])
    assert pixels.std() > 0, f"{path.name} is blank"


def _table_after(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``heading``."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:  # past the header and its --- line
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.fixture
def offline_datasets(monkeypatch, tmp_path):
    """The Hugging Face loader on local files only: no hub, caches under tmp_path."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)

    def load(data_files: dict[str, str], name: str):
        return datasets.load_dataset("parquet", data_files=data_files, cache_dir=str(tmp_path / f"hf_cache_{name}"))

    return load


# ---------------------------------------------------------------------------------------------
# (1) the final splits load with `datasets`, as given and as the card's configs say
# ---------------------------------------------------------------------------------------------
def test_the_final_splits_load_with_datasets_as_the_card_says(layout, tmp_path, offline_datasets):
    from datasets import Features

    summary = _run_uppercase(layout, tmp_path)
    counts = summary["counts"]
    assert counts["train"] > 0 and counts["validation"] > 0 and summary["accounted_for"]

    files = {split: str(_local(summary["outputs"][f"{split}_parquet"])) for split in ("train", "validation")}
    loaded = offline_datasets(files, "outputs")
    assert {split: loaded[split].num_rows for split in files} == {"train": counts["train"],
                                                                 "validation": counts["validation"]}
    assert counts["train"] + counts["validation"] == summary["stages"]["shout"]["kept"] == 8
    assert sorted([*loaded["train"]["text"], *loaded["validation"]["text"]]) == sorted(
        r["text"] for split in files for r in pq.read_table(files[split]).to_pylist())

    header, _ = _card(layout)
    final = _local(layout.final_dir)
    (config,) = header["configs"]
    assert config["config_name"] == "default"
    via_card = offline_datasets({f["split"]: str(final / f["path"]) for f in config["data_files"]}, "card")
    assert {split: via_card[split].num_rows for split in via_card} == {"train": counts["train"],
                                                                      "validation": counts["validation"]}
    # the card's features are what the loader itself finds in the files
    assert via_card["train"].features == Features._from_yaml_list(header["dataset_info"]["features"])


def test_an_empty_split_is_left_out_of_the_cards_configs_and_the_rest_loads(layout, tmp_path, offline_datasets):
    summary = _run_uppercase(layout, tmp_path, train_ratio=1.0)
    assert summary["counts"]["validation"] == 0 and summary["counts"]["train"] == 8
    header, text = _card(layout)
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "train.parquet"}]
    assert "Empty split(s) validation" in text
    final = _local(layout.final_dir)
    loaded = offline_datasets({f["split"]: str(final / f["path"]) for f in header["configs"][0]["data_files"]}, "e")
    assert loaded["train"].num_rows == 8
    for png in final.glob("plot_*.png"):
        _assert_valid_png(png)


# ---------------------------------------------------------------------------------------------
# (2) the card's header and numbers
# ---------------------------------------------------------------------------------------------
def test_the_card_header_parses_and_its_numbers_are_the_summarys(layout, tmp_path):
    summary = _run_uppercase(layout, tmp_path)
    header, text = _card(layout)
    assert summary["outputs"]["card"] == f"{layout.final_dir}/README.md"

    assert {"pretty_name", "license", "task_categories", "size_categories", "tags", "source_datasets", "configs",
            "dataset_info"} <= set(header)
    assert header["license"] == "other" and header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == ["n<1K"]
    assert header["tags"][:2] == ["synthetic", summary["dag_id"]]
    assert header["source_datasets"] == [str(tmp_path / "inputs")]
    columns = pq.read_schema(_local(summary["outputs"]["train_parquet"])).names
    assert [f["name"] for f in header["dataset_info"]["features"]] == columns == ["id", "text", "doc"]
    assert all(f["dtype"] == "string" for f in header["dataset_info"]["features"])
    assert header["dataset_info"]["splits"] == [{"name": "train", "num_examples": summary["counts"]["train"]},
                                                {"name": "validation", "num_examples": summary["counts"]["validation"]}]

    funnel = _table_after(text, "## Stage funnel")
    stages = summary["stages"]
    assert [row[0] for row in funnel] == summary["stage_order"] == ["prepare", "shout", "export"]
    for name, *numbers in funnel:
        assert [int(n) for n in numbers] == [stages[name][k] for k in
                                             ("input", "created", "kept", "filtered", "failed", "produced")]
    assert _table_after(text, "## Filter reasons") == [["shout", "too_short", "4"]] == [
        ["shout", "too_short", str(stages["shout"]["filter_reasons"]["too_short"])]]
    lengths = _table_after(text, "## Output lengths")
    assert [(row[0], int(row[1])) for row in lengths] == [("train", summary["counts"]["train"]),
                                                         ("validation", summary["counts"]["validation"])]
    assert "Characters of `text`" in text  # the text, not the id or the group key (a long path)
    assert "min_chars: 3" in text.split("## Params", 1)[1]  # the Params
    for name in ("stage_funnel", "output_lengths", "filter_reasons"):
        assert f"(plot_{name}.png)" in text
    assert "plot_cluster_sizes" not in text


def _summary(**extra) -> dict:
    stages = {"prepare": {"input": 5, "created": 0, "kept": 5, "filtered": 0, "failed": 0, "produced": 5,
                          "filter_reasons": {}, "error_kinds": {}},
              "generate": {"input": 5, "created": 0, "kept": 3, "filtered": 1, "failed": 1, "produced": 3,
                           "filter_reasons": {"too_short": 1}, "error_kinds": {"bad_json": 1}},
              "export": {"input": 3, "created": 0, "kept": 3, "filtered": 0, "failed": 0, "produced": 3,
                         "filter_reasons": {}, "error_kinds": {}}}
    return {"dag_id": "demo", "partition": "2026-01-01", "run_id": "manual__x", "run_timestamp": "t",
            "config": {"input_path": "s3://alice:s3cret@bucket/in/", "seed": 0}, "stage_order": list(stages),
            "stages": stages, "accounted_for": True, "usage": {"requests": 7, "prompt_tokens": 100},
            "models": ["m1"], "endpoints": [{"base_url": "http://bob:hunter2@10.0.0.5:8000/v1", "model": "m1"}],
            "counts": {"train": 2, "validation": 1, "train_groups": 2, "validation_groups": 1},
            "info": {}} | extra


def test_the_card_shows_hosts_and_diversity_but_never_credentials():
    summary = _summary(info={"diversity": {"clusters": 3, "before_sampling": {"n": 9, "distinct_1": 0.5},
                                           "selected": {"n": 3, "distinct_1": 0.7}}, "dialogue_format": "debate"})
    schemas = {"train": pa.schema([("id", pa.string())]), "validation": pa.schema([("id", pa.string())])}
    text = build_card(summary, schemas, license=("mit", "apache-2.0"), task_categories=("question-answering",),
                      tags=("qa",))
    header = parse_card_header(text)
    assert header["license"] == ["mit", "apache-2.0"] and header["tags"] == ["synthetic", "demo", "qa"]
    assert header["source_datasets"] == ["s3://bucket/in/"]
    assert "s3cret" not in text and "hunter2" not in text and "bob" not in text and "alice" not in text
    assert _table_after(text, "## LLM usage") == [["7", "100"]]
    assert ["m1", "10.0.0.5:8000", "remote server"] in _table_after(text, "Models:")
    assert _table_after(text, "## Diversity") == [["n", "9", "3"], ["distinct_1", "0.5", "0.7"]]
    assert "- clusters: 3" in text and "dialogue_format" in text
    assert _table_after(text, "Failed records by error kind") == [["generate", "bad_json", "1"]]


def test_urls_lose_their_userinfo_and_endpoints_show_only_their_host():
    assert without_userinfo("https://u:p@host.example/x?y=1") == "https://host.example/x?y=1"
    assert without_userinfo("include/sample_data/mind") == "include/sample_data/mind"
    assert endpoint_host("http://127.0.0.1:8080/v1") == ("127.0.0.1:8080", "local server")
    assert endpoint_host("https://key@api.example.com/v1") == ("api.example.com", "remote server")


def test_features_are_written_as_the_datasets_library_writes_them():
    from datasets import Features

    schema = pa.schema([("id", pa.string()), ("n", pa.int64()), ("score", pa.float64()), ("half", pa.float32()),
                        ("ok", pa.bool_()), ("tags", pa.list_(pa.string())), ("none", pa.null()),
                        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                        ("scores", pa.struct([("a", pa.float64()), ("steps", pa.list_(pa.int32()))])),
                        ("nested", pa.list_(pa.list_(pa.string()))), ("big", pa.large_list(pa.int8()))])
    assert hf_features(schema) == Features.from_arrow_schema(schema)._to_yaml_list()


# ---------------------------------------------------------------------------------------------
# (3), (4) the plots
# ---------------------------------------------------------------------------------------------
def test_every_plot_is_a_valid_png_of_the_fixed_size(layout, tmp_path):
    summary = _run_uppercase(layout, tmp_path)
    final = _local(layout.final_dir)
    written = {name: url for name, url in summary["outputs"].items() if name.startswith("plot_")}
    assert sorted(written) == ["plot_filter_reasons", "plot_output_lengths", "plot_stage_funnel"]
    assert sorted(p.name for p in final.glob("*.png")) == sorted(f"{n}.png" for n in written)
    for url in written.values():
        _assert_valid_png(_local(url))


def test_a_run_with_nothing_filtered_still_writes_valid_plots(layout, tmp_path):
    summary = _run_uppercase(layout, tmp_path, min_chars=0)
    assert all(s["filtered"] == 0 for s in summary["stages"].values())
    _, text = _card(layout)
    assert "No record was filtered." in text
    for name in ("stage_funnel", "output_lengths", "filter_reasons"):
        _assert_valid_png(_local(summary["outputs"][f"plot_{name}"]))


def test_cluster_sizes_in_the_summary_get_a_plot_and_empty_splits_do_not_crash(store, tmp_path):
    folder = store.join("plots")
    with_clusters = write_plots(store, folder, _summary(info={"cluster_sizes": [5, 3, 1]}), [], [])
    assert sorted(with_clusters) == ["cluster_sizes", "filter_reasons", "output_lengths", "stage_funnel"]
    for url in with_clusters.values():
        _assert_valid_png(_local(url))
    without = write_plots(store, store.join("plain"), _summary(), [{"id": "a", "text": "xyz"}], [])
    assert "cluster_sizes" not in without


class _ClusterCfg(MethodConfig):
    input_path: str = "unused"


def _clustered_prepare(run, files):
    for i in range(6):
        run.kept(f"r{i}", {"id": f"r{i}", "doc": f"d{i % 3}", "cluster": i % 2 + (i == 5),
                           "messages": [{"role": "user", "content": "q" * i}, {"role": "assistant", "content": "a"}],
                           "score": i / 2})


CLUSTERED = Method(dag_id="clustered", config=_ClusterCfg, stages=(Stage("prepare", _clustered_prepare, mapped=False),),
                   export=Export(group_key="doc", cluster_field="cluster", text_field="messages",
                                 license="cc0-1.0", task_categories=("question-answering",)))


def test_a_method_with_a_cluster_field_gets_cluster_sizes_and_nested_features_load(layout, tmp_path,
                                                                                    offline_datasets):
    (tmp_path / "x.jsonl").write_text("{}\n")
    result = run_method(CLUSTERED, _ClusterCfg(train_ratio=0.5), layout, f"file://{tmp_path}/x.jsonl")["export"]
    summary = layout.store.read_json(result["summary"])
    assert summary["info"]["cluster_sizes"] == [3, 2, 1]  # clusters 0, 1 and 2, largest first
    _assert_valid_png(_local(result["plot_cluster_sizes"]))
    header, text = _card(layout)
    assert header["license"] == "cc0-1.0" and header["task_categories"] == ["question-answering"]
    assert "3 clusters" in text and "(plot_cluster_sizes.png)" in text
    assert "Characters of `messages`" in text
    final = _local(layout.final_dir)
    loaded = offline_datasets({f["split"]: str(final / f["path"]) for f in header["configs"][0]["data_files"]}, "c")
    assert sum(d.num_rows for d in loaded.values()) == 6
    from datasets import Features

    assert loaded["train"].features == Features._from_yaml_list(header["dataset_info"]["features"])
