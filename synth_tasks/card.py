"""The dataset card and plots the export writes beside every run's final files.

``final/README.md`` is a Hugging Face dataset card: a YAML header (``configs`` with the split
files, ``dataset_info.features`` from the Parquet schema, licence, task and size categories, tags)
and a body with the run's numbers, all taken from the run summary: records per split, the stage
funnel, filter reasons, LLM usage, models and endpoint hosts, diversity figures, the Params. The
plots are PNG files beside it (``final/plot_*.png``: publishing copies final/ flat), drawn with
matplotlib's Agg canvas at a fixed size, rendered in memory and written through the Store, so the
same code writes to S3. matplotlib is imported inside the plotting functions: DAG parsing and the
library stay cheap.
"""

from __future__ import annotations

import io
import json
import statistics
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import yaml

CARD_NAME = "README.md"
PLOT_SIZE_IN = (8.0, 4.5)
PLOT_DPI = 100
PLOT_PIXELS = (int(PLOT_SIZE_IN[0] * PLOT_DPI), int(PLOT_SIZE_IN[1] * PLOT_DPI))  # width, height
TOP_REASONS = 10
SPLITS = ("train", "validation")
PLOT_TITLES = {
    "stage_funnel": "Stage funnel",
    "output_lengths": "Output length per split",
    "filter_reasons": "Top filter reasons",
    "cluster_sizes": "Cluster sizes",
}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
                   (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))


def plot_file(name: str) -> str:
    return f"plot_{name}.png"


# ---------------------------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------------------------
def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` records."""
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "n>1T")


_DTYPES = {"float": "float32", "double": "float64", "halffloat": "float16"}  # pyarrow's names -> the Hub's


def hf_feature(t: pa.DataType) -> dict:
    """One column's type in the card's ``dataset_info.features`` notation (what ``datasets``
    writes for the same Arrow type): ``{"dtype": "string"}``, ``{"list": ...}``, ``{"struct": [...]}``."""
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **hf_feature(f.type)} for f in t]}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = hf_feature(t.value_type)  # a list of plain values or of structs names them directly
        item = inner["dtype"] if set(inner) == {"dtype"} else inner["struct"] if set(inner) == {"struct"} else inner
        key = "large_list" if pa.types.is_large_list(t) else "list"
        return {key: item} | ({"length": t.list_size} if pa.types.is_fixed_size_list(t) else {})
    if pa.types.is_dictionary(t):
        return hf_feature(t.value_type)
    return {"dtype": _DTYPES.get(str(t), str(t))}


def hf_features(schema: pa.Schema) -> list[dict]:
    return [{"name": f.name, **hf_feature(f.type)} for f in schema]


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` removed (inputs and endpoints should never carry one)."""
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def endpoint_host(base_url: str) -> tuple[str, str]:
    """(host[:port], kind) of an endpoint's base URL: nothing of its path, user or key."""
    parts = urlsplit(base_url)
    host = parts.hostname or "?"
    local = host in ("localhost", "::1") or host.startswith("127.")
    return (f"{host}:{parts.port}" if parts.port else host), ("local server" if local else "remote server")


def card_data_files(counts: dict) -> list[dict]:
    """The ``configs`` data files: the non-empty splits (``datasets`` cannot read an empty Parquet
    file: its row group of 0 rows gives a batch size of 0)."""
    return [{"split": split, "path": f"{split}.parquet"} for split in SPLITS if counts.get(split, 0) > 0]


def card_header(summary: dict, split_schemas: dict[str, pa.Schema], *, license: str | tuple[str, ...],
                task_categories: Iterable[str], tags: Iterable[str]) -> dict:
    counts = summary["counts"]
    schema = next((split_schemas[s] for s in SPLITS if counts.get(s, 0) > 0 and s in split_schemas),
                  split_schemas.get("train", pa.schema([])))
    licences = [license] if isinstance(license, str) else list(license)
    return {
        "pretty_name": f"{summary['dag_id']} synthetic data ({summary['partition']})",
        "license": licences[0] if len(licences) == 1 else licences,
        "task_categories": list(task_categories),
        "size_categories": [size_category(sum(counts.get(s, 0) for s in SPLITS))],
        "tags": list(dict.fromkeys(["synthetic", summary["dag_id"], *tags])),
        "source_datasets": [without_userinfo(str(summary["config"].get("input_path", "")))],
        "configs": [{"config_name": "default", "data_files": card_data_files(counts)}],
        "dataset_info": {
            "features": hf_features(schema),
            "splits": [{"name": s, "num_examples": counts.get(s, 0)} for s in SPLITS],
        },
    }


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def funnel_rows(summary: dict) -> list[list]:
    """stage, input, created, kept, filtered, failed, produced: one row per stage, in order."""
    stages = summary["stages"]
    return [[name, *(stages[name].get(k, 0) for k in ("input", "created", "kept", "filtered", "failed", "produced"))]
            for name in summary["stage_order"] if name in stages]


def reason_counts(summary: dict, key: str = "filter_reasons") -> list[tuple[str, str, int]]:
    """(stage, kind, records) over all stages, most first: the stats count reasons by the kind
    before their ":"."""
    rows = [(stage, kind, n) for stage in summary["stage_order"]
            for kind, n in summary["stages"].get(stage, {}).get(key, {}).items()]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))


def _params(config: dict) -> dict:
    return {k: without_userinfo(v) if isinstance(v, str) else v for k, v in config.items()}


def _lengths_section(lengths: dict[str, list[int]], text_field: str) -> list[str]:
    rows = [[s, len(v), min(v), int(statistics.median(v)), max(v)] if v else [s, 0, "-", "-", "-"]
            for s, v in lengths.items()]
    return [f"Characters of `{text_field}` per record (nested fields: all their strings).", "",
            *_table(["split", "records", "min", "median", "max"], rows)]


def _diversity_section(diversity: dict) -> list[str]:
    views = {k: v for k, v in diversity.items() if isinstance(v, dict)}
    scalars = {k: v for k, v in diversity.items() if not isinstance(v, dict)}
    lines = [f"- {k}: {v}" for k, v in scalars.items()]
    if views:
        metrics = list(dict.fromkeys(m for v in views.values() for m in v))
        lines += ["", *_table(["metric", *views], ([m, *(v.get(m, "-") for v in views.values())] for m in metrics))]
    return lines


def build_card(summary: dict, split_schemas: dict[str, pa.Schema], *, license: str | tuple[str, ...] = "other",
               task_categories: Iterable[str] = ("text-generation",), tags: Iterable[str] = (),
               input_source: str = "", text_field: str = "", lengths: dict[str, list[int]] | None = None,
               plots: dict[str, str] | None = None) -> str:
    """The dataset card (Markdown with a YAML header) of one run, from its summary. ``plots``:
    {plot name: file name beside the card}; ``lengths``: characters of ``text_field`` per split."""
    plots = plots or {}
    header = card_header(summary, split_schemas, license=license, task_categories=task_categories, tags=tags)
    licences = [license] if isinstance(license, str) else list(license)
    counts, usage, info = summary["counts"], summary.get("usage", {}), dict(summary.get("info", {}))
    dag_id = summary["dag_id"]
    image = (lambda name: [f"![{PLOT_TITLES[name]}]({plots[name]})", ""] if name in plots else [])
    out = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
           f"# {header['pretty_name']}", "",
           f"Synthetic data made by the `{dag_id}` DAG of synth_tasks: run `{summary.get('run_id', '?')}` "
           f"({summary.get('run_timestamp', '?')}), partition `{summary['partition']}`, "
           f"{summary.get('wall_seconds', '?')} s from the start of its first stage. "
           + ("Every input record is accounted for: kept, filtered or failed at each stage."
              if summary.get("accounted_for") else "The ledger does not balance: see `problems` in `_summary.json`."),
           "", "## Files", ""]
    out += _table(["split", "records", "groups", "files"],
                  ([s, counts.get(s, 0), counts.get(f"{s}_groups", 0), f"`{s}.parquet`, `{s}.jsonl`"] for s in SPLITS))
    empty = [s for s in SPLITS if not counts.get(s, 0)]
    if empty:
        out += ["", f"Empty split(s) {', '.join(empty)}: left out of `configs` (an empty Parquet file cannot be loaded)."]
    out += ["", f"Plots are PNG files beside this card ({PLOT_PIXELS[0]}x{PLOT_PIXELS[1]} px): "
            + (", ".join(f"`{f}`" for f in plots.values()) or "none") + ".", "",
            "```python", "from datasets import load_dataset",
            "ds = load_dataset(\"parquet\", data_files={"
            + ", ".join(f"\"{f['split']}\": \"{f['path']}\"" for f in header["configs"][0]["data_files"]) + "})",
            "```", "",
            "## Source and licence", "",
            f"Inputs: `{header['source_datasets'][0]}`."
            + (f" The method's default input: {input_source}" if input_source else ""),
            f"Licence in the header: the one the `{dag_id}` method declares for its inputs "
            f"(`{', '.join(licences)}`); inputs of your own carry their own licence, and the records also "
            "contain model output: check the model's terms too.", "",
            "## Stage funnel", "",
            *_table(["stage", "input", "created", "kept", "filtered", "failed", "produced"], funnel_rows(summary)), "",
            *image("stage_funnel"),
            "## Filter reasons", ""]
    reasons = reason_counts(summary)
    out += (_table(["stage", "reason", "records"], reasons[:TOP_REASONS]) if reasons else ["No record was filtered."])
    if len(reasons) > TOP_REASONS:
        out += ["", f"({len(reasons) - TOP_REASONS} more in `_summary.json`.)"]
    out += ["", *image("filter_reasons")]
    errors = reason_counts(summary, "error_kinds")
    if errors:
        out += ["Failed records by error kind:", "", *_table(["stage", "error", "records"], errors), ""]
    if lengths is not None:
        out += ["## Output lengths", "", *_lengths_section(lengths, text_field), "", *image("output_lengths")]
    out += ["## LLM usage", ""]
    if usage:
        out += _table(list(usage), [list(usage.values())])
    else:
        out += ["No LLM requests."]
    out += ["", f"Models: {', '.join(f'`{m}`' for m in summary.get('models', [])) or 'none'}.", ""]
    endpoints = summary.get("endpoints", [])
    if endpoints:
        out += _table(["model", "endpoint host", "kind"],
                      ([e["model"], *endpoint_host(e["base_url"])] for e in endpoints)) + [""]
    if "diversity" in info:
        out += ["## Diversity", "", *_diversity_section(info.pop("diversity")), ""]
    sizes = info.pop("cluster_sizes", None)
    if sizes is not None:
        out += ["## Cluster sizes", "",
                f"{len(sizes)} clusters; records per cluster: min {min(sizes, default=0)}, "
                f"max {max(sizes, default=0)}.", "", *image("cluster_sizes")]
    if info:
        out += ["## Other facts", "", *(f"- {k}: `{json.dumps(v, sort_keys=True)}`" for k, v in sorted(info.items())), ""]
    out += ["## Params", "", "```yaml",
            yaml.safe_dump(_params(summary.get("config", {})), sort_keys=True, allow_unicode=True).rstrip(),
            "```", ""]
    return "\n".join(out)


def parse_card_header(card: str) -> dict:
    """The YAML header of a card (between its first two ``---`` lines)."""
    if not card.startswith("---\n"):
        raise ValueError("a dataset card starts with a YAML header between '---' lines")
    return yaml.safe_load(card[4:card.index("\n---\n", 3)])


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def text_length(value: Any) -> int:
    """Characters of a value: a string's length, or the sum over the strings nested in it."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(text_length(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(text_length(v) for v in value)
    return 0


def main_text_field(records: list[dict], exclude: Iterable[str] = ("id",)) -> str:
    """The field holding the most text over ``records`` (ids and group keys, often long paths,
    excluded): what the length plot measures when the method names none."""
    totals: dict[str, int] = {}
    for r in records:
        for k, v in r.items():
            if k not in exclude:
                totals[k] = totals.get(k, 0) + text_length(v)
    return max(sorted(totals), key=totals.__getitem__, default="")


def _figure(horizontal: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure on its own Agg canvas: no pyplot, so no global backend or figure registry to share
    # with whatever else runs in the worker process.
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    counts_axis = ax.xaxis if horizontal else ax.yaxis
    counts_axis.set_major_locator(MaxNLocator(integer=True))  # the axis counts records
    return fig, ax


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI)  # no bbox "tight": the size stays PLOT_PIXELS
    return buf.getvalue()


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_stage_funnel(summary: dict) -> bytes:
    fig, ax = _figure()
    rows = funnel_rows(summary)
    # produced too: a stage may write more records than it kept (one section -> several QA pairs)
    outcomes = (("input", 1, "tab:gray"), ("kept", 3, "tab:green"), ("filtered", 4, "tab:orange"),
                ("failed", 5, "tab:red"), ("produced", 6, "tab:blue"))
    width = 0.16
    for i, (label, col, color) in enumerate(outcomes):
        xs = [j + (i - 2) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r[col] for r in rows], width, label=label, color=color)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylabel("records")
    ax.set_title(f"{summary['dag_id']}: records per stage")
    ax.legend()
    return _png(fig)


def plot_output_lengths(lengths: dict[str, list[int]], text_field: str) -> bytes:
    fig, ax = _figure()
    values = [n for v in lengths.values() for n in v]
    if not values:
        _empty_note(ax, "no records in either split")
    else:
        lo, hi = min(values), max(values)
        bins = 30 if hi > lo else 1
        for split, v in lengths.items():
            ax.hist(v, bins=bins, range=(lo, hi if hi > lo else lo + 1), alpha=0.6, label=f"{split} ({len(v)})")
        ax.set_xlabel(f"characters of {text_field}")
        ax.set_ylabel("records")
        ax.legend()
    ax.set_title("Output length per split")
    return _png(fig)


def plot_filter_reasons(summary: dict) -> bytes:
    fig, ax = _figure(horizontal=True)
    reasons = reason_counts(summary)[:TOP_REASONS]
    if not reasons:
        _empty_note(ax, "no record was filtered")
    else:
        labels = [f"{kind} ({stage})" for stage, kind, _ in reasons][::-1]  # most at the top
        bars = ax.barh(labels, [n for *_, n in reasons][::-1], color="tab:orange")
        ax.bar_label(bars, fontsize=8)
        ax.set_xlabel("records filtered")
    ax.set_title("Top filter reasons")
    return _png(fig)


def plot_cluster_sizes(sizes: list[int]) -> bytes:
    fig, ax = _figure()
    if not sizes:
        _empty_note(ax, "no clusters")
    else:
        ordered = sorted(sizes, reverse=True)
        ax.bar(range(1, len(ordered) + 1), ordered, color="tab:blue")
        ax.set_xlabel("cluster (largest first)")
        ax.set_ylabel("records")
    ax.set_title(f"Cluster sizes ({len(sizes)} clusters)")
    return _png(fig)


def split_lengths(train: list[dict], validation: list[dict], text_field: str) -> dict[str, list[int]]:
    return {"train": [text_length(r.get(text_field)) for r in train],
            "validation": [text_length(r.get(text_field)) for r in validation]}


def write_plots(store, folder: str, summary: dict, train: list[dict], validation: list[dict],
                text_field: str | None = None) -> dict[str, str]:
    """Draw the plots and write them into ``folder``: {plot name: URL}. The cluster plot only where
    the summary's info has ``cluster_sizes``."""
    field = text_field or main_text_field(train + validation)
    pngs = {"stage_funnel": plot_stage_funnel(summary),
            "output_lengths": plot_output_lengths(split_lengths(train, validation, field), field),
            "filter_reasons": plot_filter_reasons(summary)}
    if summary.get("info", {}).get("cluster_sizes") is not None:
        pngs["cluster_sizes"] = plot_cluster_sizes(list(summary["info"]["cluster_sizes"]))
    return {name: store.write_bytes(f"{folder}/{plot_file(name)}", data) for name, data in pngs.items()}


def cluster_sizes(records: list[dict], field: str) -> list[int]:
    """Records per value of ``field``, largest first."""
    sizes: dict[Any, int] = {}
    for r in records:
        sizes[r.get(field)] = sizes.get(r.get(field), 0) + 1
    return sorted(sizes.values(), reverse=True)


def write_card(store, folder: str, summary: dict, train: list[dict], validation: list[dict], *, export,
               tags: Iterable[str] = ()) -> dict[str, str]:
    """The plots and the card beside the split files in ``folder``: {output name: URL} ("card",
    "plot_<name>"). ``export``: the method's Export declaration (licence, categories, text field)."""
    import pyarrow.parquet as pq

    schemas = {s: pq.read_schema(io.BytesIO(store.read_bytes(f"{folder}/{s}.parquet"))) for s in SPLITS}
    field = export.text_field or main_text_field(train + validation, exclude=("id", export.group_key))
    plots = write_plots(store, folder, summary, train, validation, field)
    card = build_card(summary, schemas, license=export.license, task_categories=export.task_categories,
                      tags=tags, input_source=export.input_source, text_field=field,
                      lengths=split_lengths(train, validation, field),
                      plots={name: plot_file(name) for name in plots})
    return {"card": store.write_bytes(f"{folder}/{CARD_NAME}", card.encode()),
            **{f"plot_{name}": url for name, url in plots.items()}}
