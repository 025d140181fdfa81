"""All instruction text of the two-level templates: the one home for it.

Level 1 (task-agnostic): a generic request for a question-answer sample about the image.
Level 2 (task-specific): one fixed sentence naming the task, appended to level 1.
"""

from __future__ import annotations

import random

GENERIC_INSTRUCTIONS: tuple[str, ...] = (
    "Look at the image and write one question about it together with its answer.",
    "Study the picture, then produce a question and the correct answer.",
    "Create a question that can be answered from this image, and answer it.",
    "Write a question-answer pair grounded in what the image shows.",
    "After looking at the image closely, give a question about it and its answer.",
    "Come up with a question on the visual content and provide the right answer.",
    "Generate a training sample for visual question answering from this picture.",
    "Examine the image and compose a question with a correct answer.",
    "Produce one question about this scene and answer it accurately.",
    "Based on the image, write a question a person could ask and give the answer.",
    "Observe the picture carefully and create a question with its answer.",
    "Make a visual question about this image, then answer it truthfully.",
    "Inspect the image and write down a question and the matching answer.",
    "Formulate a question whose answer is visible in the image, and answer it.",
    "Turn what you see in this image into a question and its answer.",
    "Author a question about the objects in the image and supply the answer.",
    "From this image, generate a question along with a correct response.",
    "Please write a question about the picture and then answer it.",
    "View the image and produce a clear question plus a direct answer.",
    "Think of a question this image can answer, and state the answer.",
    "Draft one question that tests understanding of the image, with its answer.",
    "Using only the image, write a question and a truthful answer to it.",
    "Give me a question about this image followed by its correct answer.",
    "Describe the image through a question and the answer to that question.",
    "Analyze the scene and create a question-answer example from it.",
    "Construct a question about the image content and respond to it.",
    "Pose a question about what appears in the image and answer it.",
    "Scan the picture and provide a question with an accurate answer.",
    "Write an image-based question and the answer it should receive.",
    "Examine what is shown and generate a question and answer about it.",
    "Produce a visual instruction sample: a question on the image and its answer.",
    "Carefully check the image, then ask something about it and answer it.",
    "Invent a question grounded in this picture and give a precise answer.",
    "Write a question that requires looking at the image, plus the answer.",
)

TASK_SUFFIX: dict[str, str] = {
    "common": "This is a Common VQA task.",
    "adv": "This is an Adversarial VQA task.",
    "mcvqa": "This is a Multi-choice VQA task.",
    "md": "This is a Multi-turn Dialogue task.",
    "rec": "This is a Referring Expression Comprehension task.",
    "reg": "This is a Referring Expression Generation task.",
    "pointqa": "This is a PointQA task.",
    "qcbox": "This is a Q->C^Box A task with reasoning grounded by boxes.",
    "rd": "This is a Referential Dialogue task.",
}

# The question a downstream model sees before a multiple-choice answer (LLaVA's wording role).
MC_ANSWER_HINT = "Answer with the option's letter from the given choices directly."
# LLaVA-1.5's benchmark prompts (genixer.evaluation.benchmarks writes the question files).
SHORT_ANSWER_HINT = "Answer the question using a single word or phrase."
UNANSWERABLE_HINT = "When the provided information is insufficient, respond with 'Unanswerable'."

JUDGE_PROMPT = (
    "Here is a question and answer pair. Is 'Question: {question} Answer: {answer}' true "
    "for this image? Please answer this question with Yes or No."
)


def instruction(task: str | None, rng: random.Random, tau: float) -> tuple[str, str]:
    """``(template_id, text)`` for one generator pair.

    With probability ``tau`` (or always when ``task`` is None) only the generic level is used,
    which teaches the generator to pick a task itself.
    """
    i = rng.randrange(len(GENERIC_INSTRUCTIONS))
    generic = GENERIC_INSTRUCTIONS[i]
    if task is None or rng.random() < tau:
        return f"g{i:02d}", generic
    return f"g{i:02d}+{task}", f"{generic} {TASK_SUFFIX[task]}"
