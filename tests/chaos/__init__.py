"""Several `serve` processes, broken on purpose: kill -9, Redis restarts, Slack and SQL outages.

Short versions run with the normal suite; the long ones with

    RELAYDESK_CHAOS=long .venv/bin/python -m pytest tests/chaos
"""
