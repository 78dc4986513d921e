"""A deterministic extraction without an LLM (``no_llm``), for tests and demos. Same text in, same
graph out.

The entities of a chunk:
- its inline code spans that name an item: a path (`std::thread::spawn`, `asyncio.run`), a type or
  trait (`Rc<RefCell<i32>>` whole, generics and all; `Send`), a macro (`vec!`), a sigil form
  (`&mut T`, `*const T`, `&self`), a lifetime (`'static`), a snake-case name (`borrow_mut`). A
  lower-case word (`send`, `input`) is a name of the program only when the chunk says what it is
  ("the `send` method", "the `move` keyword") or calls it (`join()`); "the `input` variable" is a
  local name, and expressions (`Some(4)`, `vec![1, 2]`, `x = 1`) are not entities;
- its capitalised words and phrases (Rust, Cargo, Linux) of at most three words, when the chunk
  has at least one of them inside running text (after a word or a comma): a capitalised word
  that only ever opens a sentence, a list item, a quotation or a clause after a colon
  ("Creating", "Four", "Using") is an ordinary word. Function words, discourse words and number
  words are trimmed off the front of a phrase ("The Rust" is Rust); number words alone are never
  names.
Fenced code, headings (they capitalise every word), HTML tags and comments (also across lines, and
a comment the chunk cut open at either end), link targets and link texts that are titles
("[Using Message Passing to Transfer Data](...)") are skipped; code spans are read before HTML is
removed, so `Rc<RefCell<i32>>` is not taken for a tag.

Relations: two entities named next to each other in one sentence are related when the words
between them are a short clause with a verb ("`Receiver<T>` also implements `Iterator`",
"Calling the `lock` method returns a `MutexGuard<T>`"): at most 8 words, no comma, colon,
semicolon or parenthesis, and no conjunction that starts another clause (and, or, but, while,
which, when, ...). "`Sender<T>` and a `Receiver<T>`" or a list of names is no relation. Nor is a
pair whose words hold a second clause: a subject pronoun ("for the same reason we used") or a
second auxiliary-led verb group ("`Guess::new` might panic should be discussed in its API"); nor
one whose first name is not the subject, because a preposition governs it ("a reference to a
`String` makes our API"), or whose second name is a possessor ("uses Rust's type system"). The
description is that clause as the text writes it; the strength is the number of sentences that
state it (1-10). An entity's description is the first sentence naming it."""

from __future__ import annotations

import re
from collections import Counter

from synth_tasks.methods.knowledge_graph.parse import Extraction

_FENCE = re.compile(r"```.*?```", re.DOTALL)
# one scan, left to right: a code span is kept as it is; an HTML comment (across lines, or cut off
# by the chunk's end) and a tag (its attributes may quote code) are removed
_MARKUP = re.compile(r"(`[^`\n]+`)|<!--.*?(?:-->|\Z)|</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>", re.DOTALL)
_LINK = re.compile(r"\[([^\]]*)\](?:\([^)\n]*\)|\[[^\]\n]*\])")
_LINK_DEFINITION = re.compile(r"^\s*\[[^\]\n]+\]:\s*\S+.*$", re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"(])|\n\s*\n|\n(?=#|\s*(?:[-*+]|\d+\.) )")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")
_BLOCKQUOTE = re.compile(r"^[ \t]*>[ \t>]*", re.MULTILINE)
_CODE_SPAN = re.compile(r"`([^`\n]{1,60})`")
_CAPITALISED = re.compile(r"\b([A-Z][a-zA-Z0-9]*(?:[ -][A-Z][a-zA-Z0-9]*)*)\b")

# the shape of an item named in code: an optional sigil, a path of identifiers (`::` or `.`),
# generic arguments (checked for balance below), then `!` (a macro) or `()` (a call)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CODE_ITEM = re.compile(rf"(?P<sigil>&(?:'{_IDENT}\s+)?(?:mut\s+)?|\*(?:const|mut)\s+|(?:dyn|impl)\s+)?"
                        rf"(?P<path>{_IDENT}(?:(?:::|\.){_IDENT})*)(?P<generics><.*>)?(?P<suffix>!|\(\))?")
_LIFETIME = re.compile(r"'[a-z_]{2,}")
_LOWER_NAME = r"[a-z][a-z0-9_]*(?:(?: |\.\.\.)[a-z]+){0,2}"  # `send`, `borrow_mut`, `if let`, `let...else`
_SIGIL = r"(?:&(?:mut )?|\*(?:const |mut ))"
# the receiver of a method (a keyword in Rust, the convention in Python): an item, never a local name
_RECEIVER = "self"
# what a text calls a lower-case name that is an item of the program; a variable, a field, a
# value or an argument is a local name, not an entity
_KINDS = {"function", "functions", "method", "methods", "macro", "macros", "keyword", "keywords", "trait",
          "traits", "type", "types", "module", "modules", "crate", "crates", "package", "library", "struct",
          "enum", "class", "block", "blocks", "loop", "loops", "declaration", "statement", "attribute",
          "decorator", "command", "operator", "lifetime", "constant", "static", "call", "calls",
          "coroutine", "coroutines", "exception", "protocol", "interface", "expression", "expressions", "syntax",
          "option", "setting", "flag"}
# words that open sentences and phrases ("The Rust compiler"), trimmed off the front of a phrase
_STOP = {"The", "This", "That", "These", "Those", "It", "In", "If", "We", "You", "When", "For", "A", "An", "As",
         "Note", "Listing", "Figure", "Chapter", "Section", "Table", "Here", "Then", "But", "And", "Or", "So",
         "To", "Let", "Now", "Because", "However", "With", "Some", "Each", "One", "Also", "Instead", "Rather",
         "Another", "What", "Why", "How", "Our", "My", "Its", "Their", "Using", "See", "Recall", "Like", "Unlike",
         "All", "Any", "No", "Not", "On", "Of", "At", "By", "From", "Be", "Is", "Are", "There", "They", "Both",
         "Even", "Only", "First", "Next", "Finally", "After", "Before", "While", "Once", "Until", "Since",
         "Although", "Ok", "Err", "I", "Yes", "Every", "Most", "Many", "Much", "Few", "More", "Less"}
# number words are never names by themselves ("Four threads", "Chapter Two")
_NUMBERS = {"Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven",
            "Twelve", "Twenty", "Hundred", "Thousand", "Million", "First", "Second", "Third", "Fourth", "Fifth",
            "Half", "Once", "Twice"}
MAX_PHRASE_WORDS = 3

# relations: a verb between two names, and no word that starts another clause
_CLAUSE_BREAK = re.compile(r"[,;:()\[\]—–]|\s-\s")
_CONJUNCTIONS = {"and", "or", "but", "while", "whereas", "because", "since", "although", "though", "so", "which",
                 "whose", "who", "when", "whenever", "if", "unless", "until", "before", "after", "then", "where",
                 "nor", "yet", "instead", "whether"}
_AUXILIARIES = {"is", "are", "was", "were", "be", "been", "being", "can", "cannot", "could", "may", "might",
                "must", "should", "will", "would", "shall", "does", "do", "did", "has", "have", "had", "isn't",
                "aren't", "doesn't", "don't", "can't", "won't"}
_VERBS = {"accept", "acquire", "add", "allocate", "allow", "await", "become", "block", "borrow", "build", "call",
          "cancel", "carry", "check", "clone", "combine", "compile", "contain", "convert", "create", "define",
          "deref", "derive", "describe", "drop", "enable", "ensure", "expose", "extend", "fill", "free", "get",
          "give", "guard", "handle", "hold", "implement", "include", "increment", "keep", "let", "lock", "make",
          "manage", "mark", "move", "need", "own", "pair", "pass", "pin", "point", "produce", "protect", "provide",
          "put", "read", "receive", "reference", "release", "replace", "require", "return", "run", "schedule",
          "send", "serialise", "serialize", "share", "spawn", "start", "store", "suit", "support", "take", "track",
          "transfer", "turn", "use", "wait", "wake", "work", "wrap", "write", "yield"}
_ADVERBS = {"also", "only", "always", "never", "often", "usually", "still", "then", "just", "automatically",
            "internally", "directly", "first", "now", "already", "simply", "even", "not", "itself"}
MAX_LINK_WORDS = 8
# a subject pronoun between two names starts another clause ("`&self` here for the reason we used")
_SUBJECT_PRONOUNS = {"i", "we", "you", "he", "she", "they"}
# a name right after one of these is the object of a preposition, not the subject of the verb after it
_PREPOSITIONS = {"of", "to", "for", "with", "from", "in", "on", "by", "than", "into", "about", "via"}
_DETERMINERS = {"a", "an", "the"}
_POSSESSIVE = re.compile(r"['’]s\b")


def _inflections(base: str) -> set[str]:
    forms = {base, base + "s", base + "ed", base + "d", base + "ing", base + "es"}
    if base.endswith("e"):
        forms |= {base[:-1] + "ing"}
    if base.endswith("y"):
        forms |= {base[:-1] + "ies", base[:-1] + "ied"}
    if re.search(r"[^aeiou][aeiou][bdglmnprt]$", base):  # a doubled last consonant: wrapped, spanned
        forms |= {base + base[-1] + "ed", base + base[-1] + "ing"}
    return forms


_VERB_FORMS = set().union(*(_inflections(v) for v in _VERBS)) | {"made", "gave", "given", "held", "kept", "ran",
                                                                 "took", "taken", "got", "wrote", "written", "built",
                                                                 "lets", "sent", "put", "read", "run"}


def clean(text: str) -> str:
    """The text without fenced code, headings, HTML comments and tags, link targets and
    reference definitions; inline code spans are kept as written."""
    text = _FENCE.sub(" ", text)
    if text.split("\n\n", 1)[0].count("`") % 2:
        text = text[text.index("`") + 1:]  # the chunk's overlap starts inside a code span
    if "-->" in text and ("<!--" not in text or text.index("-->") < text.index("<!--")):
        text = text[text.index("-->") + 3:]  # the chunk starts inside a comment
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    text = re.sub(r"^#+\s.*$", "", text, flags=re.MULTILINE)  # headings capitalise every word
    text = _LINK_DEFINITION.sub("", _BLOCKQUOTE.sub("", text))
    return _LINK.sub(lambda m: " " if _is_title(m.group(1)) else m.group(1), text)


def _is_title(text: str) -> bool:
    """A link text that is the title of a chapter or page ("Using Message Passing to Transfer
    Data", "Shared-State Concurrency"): every word of four letters or more capitalised, and at
    least two of them ("the Rustonomicon" is a name)."""
    long_words = [w for w in re.findall(r"[A-Za-z][\w-]*", _CODE_SPAN.sub(" ", text)) if len(w) >= 4]
    return len(long_words) >= 2 and all(w[0].isupper() for w in long_words)


def sentences(text: str) -> list[str]:
    """The sentences of a chunk (see ``clean``), whitespace collapsed, list markers removed."""
    out = []
    for s in _SENTENCE.split(clean(text)):
        s = _LIST_MARKER.sub("- ", " ".join(s.split()))  # a list item keeps a marker: its first word opens it
        if len(s.split()) >= 3:
            out.append(s)
    return out


def code_item(code: str) -> tuple[bool, bool]:
    """(whether inline code ``code`` names an item at all, whether it is a plain lower-case word
    that needs the text to say what it is)."""
    code = code.strip()
    if _LIFETIME.fullmatch(code):
        return True, False
    if code == _RECEIVER or re.fullmatch(_SIGIL + "?" + _RECEIVER, code):
        return True, False
    if re.fullmatch(_SIGIL + "?" + _LOWER_NAME, code):  # `send`, `&s2`: a name the text must say is an item
        return len(code.lstrip("&*")) >= 2, True
    m = _CODE_ITEM.fullmatch(code)
    if not m or (m.group("generics") and not _balanced(m.group("generics"))):
        return False, False
    path, plain = m.group("path"), not (m.group("sigil") or m.group("generics") or m.group("suffix"))
    if plain and len(path) < 2 or re.match(r"[a-z]\.", path):
        return False, False  # `T`, `x`: a type parameter or a variable; `s.clear()`: a call on a variable
    return True, False


def _balanced(generics: str) -> bool:
    depth = 0
    for ch in generics.replace("->", ""):
        depth += (ch == "<") - (ch == ">")
        if depth < 0:
            return False
    return depth == 0


def _named_items(sentence_list: list[str]) -> set[str]:
    """The lower-case words the chunk says are items: next to a kind word ("the `send` method",
    "the keyword `move`") or called (`join()`)."""
    found = set()
    for s in sentence_list:
        for m in re.finditer(rf"`({_SIGIL}?{_LOWER_NAME})`\s+([a-z]+)", s):
            if m.group(2) in _KINDS:
                found.add(m.group(1))
        for m in re.finditer(rf"\b([a-z]+)\s+`({_SIGIL}?{_LOWER_NAME})`", s):
            if m.group(1) in _KINDS:
                found.add(m.group(2))
        found.update(re.findall(r"`([a-z][a-z0-9_]*)\(\)`", s))
    return found


def _capitalised(sentence: str) -> list[tuple[str, int, int, bool]]:
    """(phrase, start, end, inside running text) for each capitalised phrase outside code."""
    plain = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), sentence)
    out = []
    for m in _CAPITALISED.finditer(plain):
        words = m.group(1).split()
        start = m.start()
        while words and (words[0] in _STOP or words[0] in _NUMBERS):
            start += len(words[0]) + 1
            words = words[1:]
        if not words or len(words) > MAX_PHRASE_WORDS or words[0] in _NUMBERS and len(words) == 1:
            continue
        phrase = " ".join(words)
        if len(phrase) < 2 or (len(phrase) < 3 and not phrase.isupper()):
            continue
        before = plain[:start].rstrip()
        # inside running text: after a word or a comma, or after a stop word that opened the
        # sentence ("In Rust, ..."): not a word capitalised only because it comes first
        running = start > m.start() or bool(before) and (before[-1].isalnum() or before[-1] == ",")
        out.append((phrase, start, start + len(phrase), running))
    return out


def _terms(sentence: str, items: set[str], names: set[str]) -> list[tuple[str, str, int, int]]:
    """(name, type, start, end) of the entities one sentence names, in the order it names them."""
    found = []
    for m in _CODE_SPAN.finditer(sentence):
        code = m.group(1).strip()
        is_item, needs_kind = code_item(code)
        if is_item and (not needs_kind or code in items):
            found.append((code, "technology", m.start(), m.end()))
    for phrase, start, end, _ in _capitalised(sentence):
        if phrase in names:
            found.append((phrase, "concept", start, end))
    return sorted(found, key=lambda t: t[2])


def _link(before: str, between: str, after: str) -> bool:
    """Whether the words between two names state a relation between them: a short clause with a
    verb, without punctuation, a conjunction or a pronoun that starts another clause, nor a second
    auxiliary-led verb group; the first name is not governed by a preposition (``before``: the
    sentence up to it) and the second is not a possessor (``after``: the sentence after it)."""
    if _CLAUSE_BREAK.search(between) or _POSSESSIVE.match(after):
        return False
    words = [w.strip("`\"'.").lower() for w in between.split()]
    words = [w for w in words if w]
    if not words or len(words) > MAX_LINK_WORDS or any(w in _CONJUNCTIONS or w in _SUBJECT_PRONOUNS for w in words):
        return False
    preceding = [w.lower() for w in before.split() if w.lower() not in _DETERMINERS][-1:]  # "to a `String`"
    if preceding and preceding[0] in _PREPOSITIONS:
        return False
    is_verb = [w in _AUXILIARIES or w in _VERB_FORMS for w in words]
    # verb groups (runs of verb words) that open with an auxiliary: two of them are two clauses
    finite_groups = sum(1 for k, w in enumerate(words) if w in _AUXILIARIES and (k == 0 or not is_verb[k - 1]))
    return any(is_verb) and finite_groups <= 1


def _clause_end(sentence: str, end: int) -> int:
    """``end``, moved past a kind word that follows the name ("`lock` method", "`Drop` trait")."""
    m = re.match(r"\s+([a-z]+)", sentence[end:])
    return end + m.end() if m and m.group(1) in _KINDS else end


def extract(text: str, types: tuple[str, ...], every_pair: bool = False) -> Extraction:
    """The entities and relations of one chunk (see the module's docstring). ``every_pair``: every
    two entities of a sentence are related, the sentence is the description (plain co-occurrence,
    as a generous LLM answers: the tests' scripted endpoint uses it)."""
    out = Extraction()
    sentence_list = sentences(text)
    items = _named_items(sentence_list)
    names = {p for s in sentence_list for p, _, _, running in _capitalised(s) if running}
    descriptions: dict[str, str] = {}
    kinds: dict[str, str] = {}
    pairs: Counter = Counter()
    pair_text: dict[tuple[str, str], str] = {}
    for s in sentence_list:
        terms = _terms(s, items, names)
        for name, kind, _, _ in terms:
            kinds.setdefault(name, kind if kind in types else "other")
            descriptions.setdefault(name, s[:300])
        if every_pair:
            for i, (a, *_) in enumerate(terms):
                for b, *_ in terms[i + 1:]:
                    if a != b:
                        pairs[(a, b)] += 1
                        pair_text.setdefault((a, b), s[:300])
            continue
        for (a, _, a_start, a_end), (b, _, b_start, b_end) in zip(terms, terms[1:]):
            if a != b and _link(s[:a_start], s[a_end:b_start], s[b_end:]):
                pairs[(a, b)] += 1
                pair_text.setdefault((a, b), s[a_start:_clause_end(s, b_end)])  # the clause that states it
    for name in sorted(kinds):
        out.entities.append({"name": name, "type": kinds[name], "description": descriptions[name]})
    for (a, b), n in sorted(pairs.items()):
        out.relations.append({"source": a, "target": b, "description": pair_text[(a, b)], "strength": min(10, n)})
    return out
