"""The shape of an instruction between stages, and its best response once it has scored ones."""

from __future__ import annotations


def instruction_record(rid: str, text: str, *, domain: str, origin: str, root_id: str, parent_id: str | None = None,
                       depth: int = 0, evol_ops: list[str] | None = None, source_file: str | None = None,
                       source_row: int | None = None) -> dict:
    """The one shape an instruction has between stages (every record has every key: Parquet
    takes its columns from the first row). ``root_id`` names its seed lineage: a seed or a
    Self-Instruct instruction starts one, an evolved instruction belongs to its parent's."""
    return {"id": rid, "instruction": text, "domain": domain, "origin": origin, "root_id": root_id,
            "parent_id": parent_id, "depth": depth, "evol_ops": evol_ops or [], "source_file": source_file,
            "source_row": source_row}


def best_response(record: dict) -> dict:
    """The highest-scoring response (the lowest index among equals)."""
    return max(record["responses"], key=lambda r: (r["scores"]["overall"], -r["index"]))
