"""What the thread says of customer satisfaction: the question asked, the answer."""

from __future__ import annotations

from bot.blocks.conversation import escape, quote
from bot.networks.rating import stars


def survey_sent(question: str) -> str:
    """The thread's record of the rating question (not a team reply)."""
    return f":star: Rating question sent to the customer:\n{quote(question)}"


def survey_failed(reason: str) -> str:
    return f":warning: The rating question was not delivered: {escape(reason)}"


def rating_line(score: int) -> str:
    """A customer's rating, as a thread notice (plain text: notices are escaped)."""
    return f"Customer rating: {stars(score)} {score}/5"


def comment_line(comment: str) -> str:
    return f"Comment with the rating: {comment}"
