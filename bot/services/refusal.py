"""The one way a service says no: a `Refusal` carrying the sentence the person reads.

Services raise it; handlers catch it and render `sentence` (ephemeral, ack text,
thread reply). Nothing else in the code base turns a "no" into words.
"""

from __future__ import annotations


class Refusal(Exception):
    """A request refused, worded for the person who made it."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence
