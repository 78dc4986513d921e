from synth_tasks.methods.mind.dialogue import Turn, format_turns, parse_turns, strip_own_label, to_messages

DIALOGUE = """Here is the conversation:

Teacher: What is the expected value of a die roll?
Student: Is it 3.5?
It is the average of 1 to 6.
**Teacher**: Yes. Each face has probability 1/6.
Teacher: So the sum over faces is 21/6.
Student: Got it."""


def test_turns_are_parsed_with_continuations_and_bold_labels():
    turns = parse_turns(DIALOGUE)
    assert [t.speaker for t in turns] == ["Teacher", "Student", "Teacher", "Teacher", "Student"]
    assert turns[1].text == "Is it 3.5?\nIt is the average of 1 to 6."
    assert turns[2].text == "Yes. Each face has probability 1/6."


def test_preamble_is_not_a_turn_and_plain_prose_has_none():
    assert parse_turns("Just an essay about variance.\nIt has no speakers.") == []
    assert parse_turns("Now that we know what it means: the CDF.\nNow just to make things easier: x.") == []


def test_messages_alternate_roles_and_merge_runs():
    messages = to_messages(parse_turns(DIALOGUE))
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == "Yes. Each face has probability 1/6.\n\nSo the sum over faces is 21/6."


def test_format_round_trip():
    turns = [Turn("A", "one"), Turn("B", "two")]
    assert parse_turns(format_turns(turns)) == turns


def test_a_turn_that_repeats_its_own_label_keeps_one():
    text = "Student 1: Student 1: In statistics, the mean is the center.\nStudent 2: **Student 2:** And the spread?"
    assert parse_turns(text) == [Turn("Student 1", "In statistics, the mean is the center."),
                                 Turn("Student 2", "And the spread?")]
    # another speaker's name, or the label alone, is content
    assert strip_own_label("Teacher", "Student: asked this.") == "Student: asked this."
    assert strip_own_label("Teacher", "Teacher:") == "Teacher:"
