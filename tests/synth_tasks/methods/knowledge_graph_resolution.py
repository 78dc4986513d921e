"""A hand-labelled entity-resolution fixture: entity mentions as a small model extracts them from
chunks of the Rust book, each with the entity it really is (gold cluster). Written by hand: the
surface forms vary in case, articles, plurals, possessives, spacing and typos; distinct entities
with similar names (String / string slice, Vec / VecDeque, HashMap / HashSet, borrowing / borrow
checker) must stay apart. Where the book uses two names for one thing (HashMap, hash map), they are
one entity."""

MENTIONS = [
    # (name, type, gold entity)
    ("Rust's ownership", "concept", "ownership"),
    ("ownership", "concept", "ownership"),
    ("Ownership", "concept", "ownership"),
    ("the ownership", "concept", "ownership"),
    ("ownership", "technology", "ownership"),  # typed differently in another chunk
    ("borrow checker", "technology", "borrow checker"),
    ("Borrow Checker", "technology", "borrow checker"),
    ("the borrow checker", "technology", "borrow checker"),
    ("borrow-checker", "technology", "borrow checker"),
    ("borrowing", "concept", "borrowing"),
    ("Borrowing", "concept", "borrowing"),
    ("String", "technology", "String"),
    ("Strings", "technology", "String"),
    ("string slice", "concept", "string slice"),
    ("string slices", "concept", "string slice"),
    ("Vec", "technology", "Vec"),
    ("VecDeque", "technology", "VecDeque"),
    ("vector", "concept", "vector"),
    ("vectors", "concept", "vector"),
    ("Vectors", "concept", "vector"),
    ("hash map", "concept", "hash map"),
    ("hashmap", "concept", "hash map"),
    ("hash maps", "concept", "hash map"),
    ("HashMap", "technology", "hash map"),  # the type the book names the concept by: one entity
    ("HashSet", "technology", "HashSet"),
    ("Cargo", "technology", "Cargo"),
    ("cargo", "technology", "Cargo"),
    ("Cargo's build system", "technology", "build system"),
    ("build system", "technology", "build system"),
    ("crate", "concept", "crate"),
    ("crates", "concept", "crate"),
    ("Crates.io", "organization", "crates.io"),
    ("crates.io", "organization", "crates.io"),
    ("enum", "concept", "enum"),
    ("enums", "concept", "enum"),
    ("Option enum", "technology", "Option enum"),
    ("the Option enum", "technology", "Option enum"),
    ("Option<T>", "technology", "Option<T>"),
    ("Result", "technology", "Result"),
    ("if let", "concept", "if let"),
    ("If let", "concept", "if let"),
    ("match expression", "concept", "match expression"),
    ("match expressions", "concept", "match expression"),
    ("pattern matching", "concept", "pattern matching"),
    ("patern matching", "concept", "pattern matching"),  # a typo
    ("Mozilla", "organization", "Mozilla"),
    ("Mozilla Research", "organization", "Mozilla Research"),
    ("Rust", "technology", "Rust"),
    ("Rust compiler", "technology", "Rust compiler"),
    ("the Rust compiler", "technology", "Rust compiler"),
    ("heap", "concept", "heap"),
    ("the heap", "concept", "heap"),
    ("stack", "concept", "stack"),
    ("the stack", "concept", "stack"),
]
