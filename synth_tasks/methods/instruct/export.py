"""What the export writes: SFT chat records (the core splits them by seed lineage) and, beside
them, the preference pairs, on the side of their lineage."""

from __future__ import annotations

from synth_tasks.methods.instruct.records import best_response


def sft_record(r: dict) -> dict:
    best = best_response(r)
    return {"id": r["id"], "messages": [{"role": "user", "content": r["instruction"]},
                                        {"role": "assistant", "content": best["text"]}],
            "instruction": r["instruction"], "response": best["text"], "scores": best["scores"],
            "overall": best["scores"]["overall"], "domain": r["domain"], "origin": r["origin"],
            "root_id": r["root_id"], "parent_id": r["parent_id"], "depth": r["depth"], "evol_ops": r["evol_ops"],
            "cluster": r["cluster"], "n_responses": len(r["responses"]), "model": best["model"]}


def sft_records(records: list[dict]) -> list[dict]:
    """The selected instructions as SFT chat records, each with its best response."""
    return [sft_record(r) for r in records]


def preference_pair(r: dict, margin: float) -> dict | None:
    """Chosen = best-scored, rejected = worst-scored response of the same instruction, when the
    gap reaches ``margin``."""
    if len(r["responses"]) < 2:
        return None
    best = best_response(r)
    worst = min(r["responses"], key=lambda x: (x["scores"]["overall"], x["index"]))
    gap = round(best["scores"]["overall"] - worst["scores"]["overall"], 4)
    if gap < margin or gap <= 0:
        return None
    return {"id": f"{r['id']}:pref", "root_id": r["root_id"], "domain": r["domain"], "prompt": r["instruction"],
            "chosen": best["text"], "rejected": worst["text"], "chosen_scores": best["scores"],
            "rejected_scores": worst["scores"], "margin": gap}


def preference_files(ctx, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """Preference pairs of the selected instructions, each on the side its lineage (``root_id``)
    went to in the SFT split, as JSONL and Parquet; their counts go to the summary's info."""
    pairs = [p for r in ctx.records if (p := preference_pair(r, ctx.cfg.preference_margin)) is not None]
    validation_lineages = {r["root_id"] for r in validation}
    sides = {"train": [p for p in pairs if p["root_id"] not in validation_lineages],
             "validation": [p for p in pairs if p["root_id"] in validation_lineages]}
    ctx.info["preference_pairs"] = {side: len(rows) for side, rows in sides.items()}
    files = {}
    for side, rows in sides.items():
        files[f"{side}_preferences_jsonl"] = ctx.store.write_jsonl(f"{ctx.final_dir}/{side}_preferences.jsonl", rows)
    for side, rows in sides.items():
        files[f"{side}_preferences_parquet"] = ctx.store.write_parquet(
            f"{ctx.final_dir}/{side}_preferences.parquet", rows)
    return files
