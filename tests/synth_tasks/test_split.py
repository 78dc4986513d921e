import pytest

from synth_tasks.split import split_by_group


def _records(n_docs=40, per_doc=5):
    return [{"id": f"d{d}:{i}", "source_id": f"doc{d}"} for d in range(n_docs) for i in range(per_doc)]


def test_no_document_on_both_sides_and_nothing_lost():
    records = _records()
    train, val = split_by_group(records, "source_id", 0.8, seed=1)
    assert {r["source_id"] for r in train}.isdisjoint({r["source_id"] for r in val})
    assert sorted(r["id"] for r in train + val) == sorted(r["id"] for r in records)
    assert 0.6 < len(train) / len(records) < 0.95


def test_split_is_deterministic_and_independent_of_order():
    records = _records()
    a = split_by_group(records, "source_id", 0.8, seed=1)
    b = split_by_group(list(reversed(records)), "source_id", 0.8, seed=1)
    assert {r["id"] for r in a[1]} == {r["id"] for r in b[1]}
    c = split_by_group(records, "source_id", 0.8, seed=2)
    assert {r["id"] for r in a[1]} != {r["id"] for r in c[1]}


def test_small_runs_still_get_a_validation_group():
    train, val = split_by_group(_records(n_docs=2), "source_id", 0.9, seed=0)
    assert len({r["source_id"] for r in val}) == 1 and len({r["source_id"] for r in train}) == 1


def test_ratio_one_keeps_everything_in_train_and_bad_ratio_fails():
    train, val = split_by_group(_records(n_docs=3), "source_id", 1.0)
    assert val == [] and len(train) == 15
    with pytest.raises(ValueError):
        split_by_group(_records(), "source_id", 0.0)
