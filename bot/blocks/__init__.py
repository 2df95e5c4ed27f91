"""Pure Block Kit builders, one module per surface: no I/O, easy to test.

- `conversation`: a conversation's root, its messages and the shared pieces (escape, dates).
- `escalation`: pages, acknowledgements and `/oncall`.
- `handoff`: the handoff form.
- `stats`: `/social-stats` and the daily summary.
"""
