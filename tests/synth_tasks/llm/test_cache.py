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
        import os, signal
        from synth_tasks.storage import Store
        from synth_tasks.llm.cache import ResponseCache
        cache = ResponseCache(Store({store.root!r}), {root!r})
        for i, key in enumerate({[_key(i) for i in range(50)]!r}):
            cache.put(key, {{"text": str(i)}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    alive = ResponseCache(store, root)
    alive.put(_key(99), {"text": "99"})
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    after = ResponseCache(store, root)
    assert [after.get(_key(i)) for i in range(50)] == [{"text": str(i)} for i in range(50)]
    assert after.get(_key(99)) == {"text": "99"}
