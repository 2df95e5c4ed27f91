"""The offline sandbox behind `python -m bot demo` (run as `python -m tests.demo`).

It lives with the tests' stand-ins for Slack and the networks; production code
never imports it.
"""
