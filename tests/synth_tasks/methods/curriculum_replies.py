"""Deterministic replies of an OpenAI-compatible fake for the curriculum method: per stage a story
whose measured grade lies in that stage's band of the shipped stages file (names vary per request,
so stories differ), questions answerable from their story, and a model under test that answers the
first three stages right and the last three wrong."""

from __future__ import annotations

import itertools
import json
import re

# stage-identifying phrase of the stage's prompt -> story template ({name} varies per request)
STORIES = {
    "seeing colours": "{name} has a red ball. The ball is round. It is big and soft. {name} sees a blue box. "
                      "The box has a flat side. The sun is hot. {name} is glad.",
    "sorts them into groups": "{name} has a basket of fruit and a big bag of toys in the kitchen. The apple and the banana are "
                          "fruit, and the truck and the ball are toys. {name} sorts them into two groups on the table. "
                          "Which group does the carrot belong to? It belongs with the fruit and the vegetables.",
    "how they move": "{name} stacked three heavy blocks on the table, one above another. The tower started to tip "
                     "because the top block was not balanced. It fell down and rolled across the floor. "
                     "{name} learned that a wide bottom makes a tower steady, so the next tower stayed up.",
    "words and talking": "{name} listened when the teacher explained the meaning of a new word. "
                         "The word was enormous, and it means something very large. "
                         "{name} practiced saying the sentence to remember it. Later, {name} explained "
                         "the word to a friend, who understood at once.",
    "reasons step by step": "{name} noticed a pattern in the numbers written on the classroom "
                            "board: two, four, six, eight. Each number was two greater than the number "
                            "before it, so the next number must be ten, because 8 + 2 = 10. "
                            "{name} checked the rule against every example and decided the "
                            "answer was correct.",
    "feel, believe and intend": "{name} understood immediately that Marianne believed the chocolate remained "
                                "inside the cupboard, because Marianne had been outside when her mischievous "
                                "brother secretly transferred it elsewhere. Although {name} felt tempted to "
                                "laugh, {name} recognised that Marianne's disappointment would be genuine, and "
                                "decided that explaining the situation honestly was considerably kinder.",
}
NAMES = ["Tom", "Sam", "Ben", "Max", "Kim", "Ann", "Dan", "Liz", "Pat", "Ned", "Jo", "Al", "Bo", "Cy", "Di", "Ed"]
MASTERED = ("seeing colours", "sorts them into groups", "how they move")  # the fake model answers these right


class CurriculumReplies:
    def __init__(self):
        self.counters = {key: itertools.count() for key in STORIES}
        self.stories: dict[str, str] = {}  # story text -> stage key

    def __call__(self, body: dict) -> str:
        prompt = body["messages"][0]["content"]
        if "Write only the story" in prompt:
            key = next(k for k in STORIES if k in prompt)
            story = STORIES[key].format(name=NAMES[next(self.counters[key]) % len(NAMES)])
            self.stories[story] = key
            return story
        if "Student's answer:" in prompt:  # the LLM judge: right when the answer is the reference
            reference = prompt.split("Reference answer: ", 1)[1].split("\n", 1)[0].strip()
            said = prompt.split("Student's answer: ", 1)[1].split("\n", 1)[0].strip()
            return json.dumps({"correct": said.lower() == reference.lower()})
        story = prompt.split("Story:\n", 1)[1].split("\n\n", 1)[0].strip()
        words = re.findall(r"[A-Za-z]+", story)
        answer = words[4]  # the fifth word of the story
        if "Reply with JSON" in prompt and "choices" in prompt:
            return json.dumps({"question": f"Which word comes after '{words[3]}' in the story?",
                               "choices": ["zebra", answer, "violin", "pancake"], "answer": answer})
        if "Reply with JSON" in prompt:
            return json.dumps({"question": f"Which word comes after '{words[3]}' in the story?", "answer": answer})
        right = self.stories.get(story) in MASTERED
        if "letter of the correct choice" in prompt:
            return "B" if right else "A"
        return answer if right else "I do not know"
