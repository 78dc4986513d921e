from synth_tasks.methods.mind.stages import SpeakerTurns
from synth_tasks.quality.filters import MinTokens, PromptEcho, Refusal, Repetition, first_drop

GOOD = ("Student 1: The variance is the expected squared deviation from the mean.\n"
        "Student 2: So we square the deviations to get rid of the signs before averaging?\n"
        "Student 1: Exactly, and the standard deviation is the square root of that, in the units of X.\n"
        "Student 2: That is why it measures a typical distance from the mean.")
CONTEXT = ("The expected value of a random variable is a measure of the center of its distribution. "
           "How far from the mean can the variable be? This chapter develops an answer to that question.")


def test_min_tokens():
    assert MinTokens(50)(GOOD).keep is True  # 72 tokens
    assert MinTokens(100)(GOOD).reason == "too_short: 72 tokens < 100"
    verdict = MinTokens(50)("Student 1: hi\nStudent 2: hello")
    assert verdict.keep is False and verdict.reason.startswith("too_short: ")


def test_refusal_is_a_reply_that_opens_by_declining_not_a_character_who_apologises():
    assert Refusal()("I'm sorry, but I can't assist with that.").reason == "refusal: \"I'm sorry, but I can't\""
    assert Refusal()("I cannot help with this request.").reason == "refusal: 'I cannot help'"
    assert Refusal()("  As an AI language model, I do not write stories.").reason == "refusal: 'As an AI'"
    assert Refusal()("I am afraid, but I am unable to write that story.").keep is False
    assert Refusal()("\"I'm sorry, but I can't come,\" said Tom. Lily knew he was sad.").keep  # dialogue
    assert Refusal()("Tom said he was sorry, but he couldn't help it.").keep
    assert Refusal()("I can't wait to see the red ball, said the cat.").keep  # "can't" but no declining verb
    assert Refusal()(GOOD).keep


def test_speaker_turns():
    assert SpeakerTurns()(GOOD).keep
    assert SpeakerTurns()("An essay with no speakers at all.").reason == "missing_speaker_turns: 0 turns by 0 speakers"
    monologue = "Teacher: one point.\nTeacher: another point."
    assert SpeakerTurns()(monologue).reason == "missing_speaker_turns: 2 turns by 1 speakers"


def test_repetition_catches_loops_not_dialogue():
    assert Repetition()(GOOD).keep
    loop = GOOD + "\n" + "\n".join(["Student 2: I see. I see. I see."] * 12)
    assert Repetition()(loop).reason.startswith("repetition_loop: ")
    phrase_loop = "Student 1: " + " ".join(["the mean is the center of mass"] * 30)
    assert Repetition()(phrase_loop).reason.startswith("repetition_loop: ")


def test_prompt_echo():
    prompt = CONTEXT + "\n\nConvert the context above into a multi-turn discussion between two students."
    assert PromptEcho()(GOOD, prompt).keep
    assert PromptEcho()("Student 1: " + CONTEXT, prompt).reason.startswith("echoes_prompt: ")


def test_first_drop_reports_the_first_failing_filter():
    filters = [MinTokens(5), SpeakerTurns(), Repetition()]
    assert first_drop(filters, GOOD).keep
    assert first_drop(filters, "plain prose without any speakers in it").reason.startswith("missing_speaker_turns")


def test_on_topic_keeps_a_dialogue_about_its_context_and_drops_one_about_something_else():
    from synth_tasks.quality.filters import OnTopic, topic_overlap

    context = ("The standard deviation of a random variable measures how far the variable is from its mean. "
               "The variance is the expected squared deviation from the mean, and the standard deviation is "
               "the square root of the variance, in the units of the variable.")
    off_topic = ("Student 1: There is an amazing variety of topics you can share with your visitors.\n"
                 "Student 2: Yes, thanks to your kindness and generosity, we can all enjoy them.")
    assert OnTopic()(GOOD, context).keep and topic_overlap(GOOD, context) >= 0.4
    verdict = OnTopic()(off_topic, context)
    assert not verdict.keep and verdict.reason.startswith("off_topic: uses 0% of its source's 20 key terms < 30%")
    assert OnTopic()(off_topic, "").keep  # nothing to stay on


def test_placeholders_are_not_content():
    from synth_tasks.quality.filters import NoPlaceholders

    check = NoPlaceholders()
    assert check("This is a [name] who has been studying [field].").reason == "placeholder: unfilled slot '[name]'"
    assert check("...").reason == "placeholder: 0 words < 5"
    assert check("A <profession> working in <city>.").reason.startswith("placeholder: unfilled slot")
    assert check("A retired beekeeper in Vermont who tracks varroa mite counts every week.").keep
    assert check("A statistician who cites [1] and [Smith 2020] in every report.").keep  # citations are content
