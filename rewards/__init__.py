"""Rule-based rewards for R1-Zero training and evaluation (no torch, no transformers).

Every reward function has TRL's signature: `f(completions, **dataset_columns)` -> one float (or None) per
completion; completions are strings or chat-message lists; unknown keyword arguments are ignored.
"""

from rewards.accuracy import accuracy_reward
from rewards.code import code_reward, extract_program, score_programs
from rewards.countdown import countdown_reward
from rewards.extract import ANSWER_POLICIES, completion_text, extract_answer, reference_answer
from rewards.formatting import format_reward, tag_count_reward
from rewards.registry import REWARD_FUNCS, get_reward_funcs
from rewards.verify import answers_equal, cluster_answers, verify_batch

__all__ = [
    "ANSWER_POLICIES",
    "REWARD_FUNCS",
    "accuracy_reward",
    "answers_equal",
    "cluster_answers",
    "code_reward",
    "completion_text",
    "countdown_reward",
    "extract_answer",
    "extract_program",
    "format_reward",
    "get_reward_funcs",
    "reference_answer",
    "score_programs",
    "tag_count_reward",
    "verify_batch",
]
