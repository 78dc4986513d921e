"""Conversation trees (the OpenAssistant export format) to threads, and threads to seq2seq pairs.

A tree is one JSON object: ``message_tree_id``, ``tree_state``, ``prompt`` = the root message node
(``message_id``, ``parent_id``, ``text``, ``role`` prompter/assistant, ``lang``, ``rank``,
``review_result``, ``deleted``, ``synthetic``, ``replies`` = child nodes). A thread is one path from
the root to a leaf; a deleted or negatively reviewed message cuts the thread before it, and replies
are visited best rank first (rank 0 is OpenAssistant's best), so a tree's first thread is its best.
"""

from __future__ import annotations

from synth_tasks.prompts import load_prompt, render

ROLES = {"prompter": "user", "assistant": "assistant"}


def _cut_here(node: dict) -> bool:
    return bool(node.get("deleted")) or node.get("review_result") is False


def _rank_key(node: dict) -> tuple:
    rank = node.get("rank")
    return (rank is None, rank if rank is not None else 0)


def tree_threads(tree: dict) -> list[list[dict]]:
    """Every root-to-leaf thread as a list of ``{"message_id", "role" (user/assistant), "text",
    "rank"}``, best-ranked replies first; a thread reaching a deleted or negatively reviewed message
    ends before it. Identical threads (two cut children of one message) appear once."""
    threads: list[list[dict]] = []
    seen: set[tuple] = set()

    def emit(path: list[dict]) -> None:
        key = tuple(m["message_id"] for m in path)
        if path and key not in seen:
            seen.add(key)
            threads.append(list(path))

    def walk(node: dict, path: list[dict]) -> None:
        if _cut_here(node):
            emit(path)
            return
        path = path + [{"message_id": node["message_id"], "role": ROLES.get(node.get("role"), node.get("role")),
                        "text": node.get("text") or "", "rank": node.get("rank")}]
        replies = sorted(node.get("replies") or [], key=_rank_key)  # stable: equal ranks keep their order
        if not replies:
            emit(path)
        for reply in replies:
            walk(reply, path)

    walk(tree["prompt"], [])
    return threads


def trim_thread(messages: list[dict], min_messages: int) -> tuple[list[dict] | None, str | None, bool]:
    """(messages ending in an assistant reply, drop reason, trimmed): trailing user turns are
    trimmed; a thread then shorter than ``min_messages`` or without a user turn before its reply
    is dropped with the reason."""
    trimmed, n_before = False, len(messages)
    while messages and messages[-1]["role"] != "assistant":
        messages, trimmed = messages[:-1], True
    if not messages:
        return None, f"too_short: no assistant reply in {n_before} message(s)", trimmed
    if len(messages) < max(2, min_messages):
        return None, (f"too_short: {len(messages)} message(s) up to the last assistant reply < "
                      f"min_messages {max(2, min_messages)}"), trimmed
    if messages[0]["role"] != "user":
        return None, f"not_user_first: the thread starts with a {messages[0]['role']} turn", trimmed
    return messages, None, trimmed


def render_role_markers(history: list[dict]) -> str:
    """The seed's form: ``<Role user>...<Role bot>...<Role user>...<Role bot>`` (templates in
    include/prompts/data_selection/role_*.txt), ending with the marker the reply follows."""
    user, bot, reply = (load_prompt(f"data_selection/role_{n}") for n in ("user", "bot", "reply"))
    parts = [render(user if m["role"] == "user" else bot, text=m["text"]) for m in history]
    return "".join(parts) + reply


def render_chat_template(history: list[dict], template: str, special: dict[str, str]) -> str:
    """``history`` through a Jinja chat template (the tokenizer's own), with the generation prompt."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [{"role": m["role"], "content": m["text"]} for m in history]
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special)


def seq2seq_pair(messages: list[dict], fmt: str = "role_markers", chat_template: tuple[str, dict] | None = None
                 ) -> dict:
    """``Input`` = the conversation before the last assistant reply, rendered; ``Output`` = that reply."""
    history, last = messages[:-1], messages[-1]
    if fmt == "chat_template":
        if chat_template is None:
            raise ValueError("chat_template rendering needs the tokenizer's template")
        rendered = render_chat_template(history, *chat_template)
    else:
        rendered = render_role_markers(history)
    return {"Input": rendered, "Output": last["text"]}
