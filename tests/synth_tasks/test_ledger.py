import pytest

from synth_tasks.export import check_chain
from synth_tasks.ledger import LedgerError, StageLedger, summarize_stages


def _ledger():
    ledger = StageLedger("filter", 3)
    ledger.kept("a")
    ledger.filtered("b", "too_short: 12 tokens < 50")
    ledger.filtered("c", "too_short: 3 tokens < 50")
    ledger.failed("d", "timeout: no answer", raw=None)
    return ledger


def test_stats_add_up_and_count_reasons_by_kind():
    stats = _ledger().stats()
    assert stats == {"stage": "filter", "shard": 3, "input": 4, "created": 0, "kept": 1, "filtered": 2, "failed": 1,
                     "filter_reasons": {"too_short": 2}, "error_kinds": {"timeout": 1}}


def test_a_record_cannot_be_accounted_twice():
    ledger = _ledger()
    with pytest.raises(LedgerError, match="twice"):
        ledger.kept("a")


def test_unaccounted_and_unknown_records_are_caught():
    ledger = _ledger()
    ledger.check_complete(["a", "b", "c", "d"])
    with pytest.raises(LedgerError, match="unaccounted records \\['e'\\]"):
        ledger.check_complete(["a", "b", "c", "d", "e"])
    with pytest.raises(LedgerError, match="unknown records \\['d'\\]"):
        ledger.check_complete(["a", "b", "c"])


def test_summary_sums_shards_and_checks_the_chain():
    gen = [{"stage": "generate", "shard": i, "input": 5, "kept": 4, "filtered": 0, "failed": 1,
            "produced": 4, "usage": {"prompt_tokens": 100}} for i in range(3)]
    filt = [{"stage": "filter", "shard": i, "input": 4, "kept": 3, "filtered": 1, "failed": 0,
             "filter_reasons": {"too_short": 1}} for i in range(3)]
    stages = summarize_stages(gen + filt)
    assert stages["generate"]["input"] == 15 and stages["generate"]["usage"] == {"prompt_tokens": 300}
    assert stages["filter"]["filter_reasons"] == {"too_short": 3}
    assert all(s["balanced"] for s in stages.values())
    assert check_chain(stages, ["generate", "filter"]) == []
    filt[0]["input"] = 3  # a record went missing between the stages
    filt[0]["kept"] = 2
    problems = check_chain(summarize_stages(gen + filt), ["generate", "filter"])
    assert problems == ["generate produced 12 but filter took in 11"]


def test_records_a_stage_creates_are_accounted_but_not_expected_from_before():
    prev = StageLedger("respond", 0)
    for rid in ("a", "b"):
        prev.kept(rid)
    evolve = StageLedger("evolve", 0)
    evolve.kept("a")
    evolve.kept("b")
    for rid, keep in (("a:e1", True), ("b:e1", False)):
        evolve.created(rid)
        evolve.kept(rid) if keep else evolve.filtered(rid, "no_information_gain: equal to parent")
    evolve.check_complete(["a", "b", "a:e1", "b:e1"])
    stats = [prev.stats() | {"produced": 2}, evolve.stats() | {"produced": 3}]
    stages = summarize_stages(stats)
    assert stages["evolve"]["input"] == 4 and stages["evolve"]["created"] == 2 and stages["evolve"]["balanced"]
    assert check_chain(stages, ["respond", "evolve"]) == []
    evolve.created("ghost")
    with pytest.raises(LedgerError, match="ghost"):
        evolve.check_complete(["a", "b", "a:e1", "b:e1"])
