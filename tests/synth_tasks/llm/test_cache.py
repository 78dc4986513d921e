import subprocess
import sys
import textwrap

from synth_tasks.llm.cache import ResponseCache, cache_key

BASE = dict(endpoint="http://vllm-a:8000/v1", model="m", messages=[{"role": "user", "content": "x"}],
            sampling={"temperature": 1.0, "top_p": 0.9, "seed": 3}, response_format=None)


def test_key_is_stable_and_order_independent():
    reordered = dict(BASE, sampling={"seed": 3, "top_p": 0.9, "temperature": 1.0})
    assert cache_key(**BASE) == cache_key(**reordered)
    assert len(cache_key(**BASE)) == 64


def test_every_input_changes_the_key():
    variants = [
        dict(BASE, endpoint="http://vllm-b:8000/v1"),  # another server under the same model name
        dict(BASE, model="m2"),
        dict(BASE, messages=[{"role": "user", "content": "y"}]),
        dict(BASE, sampling={**BASE["sampling"], "seed": 4}),
        dict(BASE, sampling={**BASE["sampling"], "temperature": 0.5}),
        dict(BASE, response_format={"type": "json_object"}),
    ]
    keys = {cache_key(**v) for v in variants} | {cache_key(**BASE)}
    assert len(keys) == len(variants) + 1


def test_cache_round_trip(store):
    cache = ResponseCache(store, store.join("_cache", "llm"))
    key = cache_key(**BASE)
    assert cache.get(key) is None
    cache.put(key, {"text": "hello", "model": "m"})
    assert cache.get(key) == {"text": "hello", "model": "m"}
    # another task on the same cache sees it at once, and after the writer closed
    assert ResponseCache(store, cache.root).get(key) == {"text": "hello", "model": "m"}
    cache.close()
    assert ResponseCache(store, cache.root).get(key) == {"text": "hello", "model": "m"}
    assert store.exists(f"{cache.root}/responses.sqlite")


def _key(i: int) -> str:
    return cache_key(**dict(BASE, messages=[{"role": "user", "content": str(i)}]))


def test_answers_of_a_killed_writer_are_kept(store):
    """SIGKILL between answers (as the scheduler's kill of a stuck task): every answer stored
    before it is there for the retried task, also while another writer holds the cache open."""
    root = store.join("_cache", "llm")
    script = textwrap.dedent(f"""
        import asyncio, os, signal
        from synth_tasks.storage import Store
        from synth_tasks.llm.cache import ResponseCache
        cache = ResponseCache(Store({store.root!r}), {root!r})
        keys = {[_key(i) for i in range(50)]!r}
        for i, key in enumerate(keys[:25]):
            cache.put(key, {{"text": str(i)}})
        async def written_then_killed():  # as a stage's answers arrive, then the kill
            await asyncio.gather(*(cache.aput(key, {{"text": str(i)}}) for i, key in enumerate(keys) if i >= 25))
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(written_then_killed())
    """)
    alive = ResponseCache(store, root)
    alive.put(_key(99), {"text": "99"})
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    after = ResponseCache(store, root)
    assert [after.get(_key(i)) for i in range(50)] == [{"text": str(i)} for i in range(50)]
    assert after.get(_key(99)) == {"text": "99"}


def test_answers_arriving_together_share_one_commit_and_each_is_stored_when_its_write_returns(store, monkeypatch):
    """On a local root the writes made in one pass of the event loop are one transaction (not
    one per answer), and a write that returned is visible to another task at once."""
    import asyncio

    cache = ResponseCache(store, store.join("_cache", "llm"))
    other = ResponseCache(store, cache.root)  # another task's connection
    batches = []
    put_rows = cache._put_rows
    monkeypatch.setattr(cache, "_put_rows", lambda rows: batches.append(len(rows)) or put_rows(rows))

    async def answer(i: int):
        await asyncio.sleep(0)  # the answers come back in the same pass of the loop
        await cache.aput(_key(i), {"text": str(i)})
        return other.get(_key(i))

    async def main():
        return await asyncio.gather(*(answer(i) for i in range(20)))

    assert asyncio.run(main()) == [{"text": str(i)} for i in range(20)]
    assert batches == [20]


def test_lookups_made_together_are_answered_each_with_its_own_row(store):
    import asyncio

    cache = ResponseCache(store, store.join("_cache", "llm"))
    for i in range(0, 1200, 2):
        cache.put(_key(i), {"text": str(i)})
    keys = [_key(i) for i in range(1200)] + [_key(4)]  # more keys than one SELECT takes, one twice

    async def main():
        return await asyncio.gather(*(cache.aget(k) for k in keys))

    for _ in range(2):  # a second event loop (the next stage call) is served as well
        got = asyncio.run(main())
        assert got == [{"text": str(i)} if i % 2 == 0 else None for i in range(1200)] + [{"text": "4"}]


def test_a_failed_commit_fails_every_write_that_waited_for_it(store, monkeypatch):
    import asyncio
    import sqlite3

    import pytest

    cache = ResponseCache(store, store.join("_cache", "llm"))

    def locked(rows):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(cache, "_put_rows", locked)

    async def main():
        return await asyncio.gather(*(cache.aput(_key(i), {"text": "x"}) for i in range(3)), return_exceptions=True)

    errors = asyncio.run(main())
    assert [type(e) for e in errors] == [sqlite3.OperationalError] * 3
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(cache.aput(_key(9), {"text": "x"}))
