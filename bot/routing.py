"""Routing rules (`ROUTING_RULES`): which team, priority and tags a new conversation gets.

The file is TOML, one `[[rule]]` table per rule, read in order. A rule's conditions
all have to hold (a list within one condition: any of it):

- `network`: network names (`telegram`, `whatsapp`, `x`, `generic`, `meta`) or Meta's
  channels (`messenger`, `instagram`);
- `keywords`: words or phrases found as whole words in the first message, ignoring
  case and accents (`reembolso` matches "REEMBOLSÓ");
- `regex`: Python regular expressions searched in the first message, ignoring case;
- `language`: ISO 639-1 codes (`es`) of the first message's detected language;
- `handle`: the customer's handle or id, ignoring case and a leading `@`.

A rule may have a `name`, for the reader only.

A rule with no condition matches every conversation. Of the matching rules, the
first that names a `team` sets the team and the first that names a `priority` sets
the priority; `tags` add up over every matching rule.

Language detection: `langidentify` (pure Python, Apache-2.0, deterministic), choosing
among the languages the rules name and English, or the file's top-level
`languages = [...]`. Only those languages' models are loaded (about 12 MB each); a
message too short or too mixed to tell has no language and matches no `language`.

Everything is checked and compiled once (`load_rules`); a mistake is a `RulesError`
naming the file's line. Matching a message costs a few string and regex searches,
plus one detection (of its first `DETECT_CHARS` characters) when a rule gets as far
as asking for its language.
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.inbound import NewCustomerMessage, Routed

log = logging.getLogger(__name__)

PRIORITIES = ("low", "normal", "high", "urgent")
URGENT = "urgent"
CONDITIONS = ("network", "keywords", "regex", "language", "handle")
EFFECTS = ("team", "priority", "tags")
MAX_TAG = 64
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_LINE = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")
# langidentify's confidence gap below which the language is taken as unknown
MIN_GAP = 0.02
DEFAULT_LANGUAGE = "en"
# Detection reads this much of the message: plenty to tell a language, and its cost
# grows with the length (about 2 ms for 660 characters on a loaded 2-core machine).
DETECT_CHARS = 200


def is_tag(text: str) -> bool:
    """Whether `text` can be a tag (what the stats filters accept)."""
    return len(text) <= MAX_TAG and _TAG.match(text) is not None


TAG_RULE = f"at most {MAX_TAG} lower-case letters, digits, '-', '_' or '.'"


class RulesError(ValueError):
    """A mistake in the rules file, worded for a person with its line."""


def fold(text: str) -> str:
    """Lower case without accents: what keywords and texts are compared as."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> str:
    """The folded words of `text`, space-separated with a space at each end."""
    return " " + " ".join(re.findall(r"\w+", fold(text))) + " "


@dataclass(frozen=True)
class Rule:
    networks: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()  # each as _words() gives it
    patterns: tuple[re.Pattern[str], ...] = ()
    languages: frozenset[str] = frozenset()
    handles: frozenset[str] = frozenset()
    team: str | None = None
    priority: str | None = None
    tags: tuple[str, ...] = ()

    def matches(self, message: NewCustomerMessage, language: Callable[[], str | None]) -> bool:
        if self.networks and not (
            message.network in self.networks
            or message.reply_context.get("channel") in self.networks
        ):
            return False
        if self.handles and not (_handles(message) & self.handles):
            return False
        if self.keywords:
            words = _words(message.text)
            if not any(keyword in words for keyword in self.keywords):
                return False
        if self.patterns and not any(p.search(message.text) for p in self.patterns):
            return False
        return not self.languages or language() in self.languages


def _handle(value: str) -> str:
    return value.strip().removeprefix("@").casefold()


def _handles(message: NewCustomerMessage) -> set[str]:
    found = {_handle(message.author_id)}
    if message.author_handle:
        found.add(_handle(message.author_handle))
    return found


@dataclass(frozen=True)
class Rules:
    """A checked, compiled rules file."""

    rules: tuple[Rule, ...]
    languages: tuple[str, ...] = ()  # what detection chooses among; () when no rule asks

    @property
    def wants_language(self) -> bool:
        return any(rule.languages for rule in self.rules)

    def decide(self, message: NewCustomerMessage, detect: Callable[[str], str | None]) -> Routed:
        """Team and priority of the first matching rule naming one; every match's tags."""
        detected: list[str | None] = []

        def language() -> str | None:  # detected once, and only if a rule asks
            if not detected:
                detected.append(detect(message.text))
            return detected[0]

        team = priority = None
        tags: dict[str, None] = {}
        for rule in self.rules:
            if not rule.matches(message, language):
                continue
            team = team or rule.team
            priority = priority or rule.priority
            tags.update(dict.fromkeys(rule.tags))
        return Routed(team=team, priority=priority, tags=list(tags))


class Router:
    """Rules with their language models loaded: `route` is called per new conversation."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._model: Any = None
        self._detector: Any = None
        self._unknown: Any = None
        # A detector is not thread-safe and costs about as much to make as one detection:
        # one per thread (the SQLite writer's, or the event loop's on PostgreSQL).
        self._local = threading.local()
        if rules.wants_language:  # imported and loaded only then (about 0.1 s + 12 MB each)
            from langidentify import Detector, Language, Model

            self._model = Model.load_lite([Language.from_string(code) for code in rules.languages])
            self._detector, self._unknown = Detector, Language.UNKNOWN

    def detect(self, text: str) -> str | None:
        """The ISO 639-1 code of `text`'s language, or None when it cannot be told."""
        if self._model is None:
            return None
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._detector(self._model)
        try:
            found = detector.detect(text[:DETECT_CHARS])
        except Exception:  # noqa: BLE001 - the library's own failure: the language is unknown
            log.warning("language detection failed; routed as unknown", exc_info=True)
            return None
        if found == self._unknown or detector.results.gap < MIN_GAP:
            return None
        return str(found.iso_code)

    def route(self, message: NewCustomerMessage) -> Routed | None:
        routed = self.rules.decide(message, self.detect)
        return routed if (routed.team or routed.priority or routed.tags) else None


# -- reading the file ---------------------------------------------------------------------


@dataclass
class _Source:
    """The file's lines, to find where a key of the n-th rule is written."""

    path: str
    lines: list[str] = field(default_factory=list)

    def rule_line(self, index: int) -> int:
        """The line of the `index`-th (from 0) `[[rule]]` header; 0 if not found."""
        seen = -1
        for number, line in enumerate(self.lines, 1):
            if re.match(r"\s*\[\[\s*rule\s*\]\]", line):
                seen += 1
                if seen == index:
                    return number
        return 0

    def key_line(self, index: int, key: str) -> int:
        """The line where the `index`-th rule sets `key`, else its header's line."""
        start = self.rule_line(index)
        if not start:
            return 0
        name = re.escape(key)
        pattern = re.compile(rf"""\s*(?:{name}|"{name}"|'{name}')\s*=""")
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if re.match(r"\s*\[", line):
                break
            if pattern.match(line):
                return number
        return start

    def error(self, line: int, message: str) -> RulesError:
        where = f"{self.path}, line {line}" if line else self.path
        return RulesError(f"ROUTING_RULES: {where}: {message}")


def load_rules(
    path: str | Path,
    *,
    teams: Sequence[str],
    team_channels: Mapping[str, str],
    networks: Iterable[str],
) -> Rules:
    """Read, check and compile the rules file; raise `RulesError` naming the line."""
    source = _Source(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise source.error(0, f"cannot be read ({reason})") from None
    source.lines = text.splitlines()
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _LINE.search(message)
        line = 0
        if found:  # "at end of document": the last line
            line = int(found.group(1)) if found.group(1) else len(source.lines)
        raise source.error(line, f"not valid TOML: {_LINE.sub('', message)}") from None
    unknown = sorted(set(document) - {"rule", "languages"})
    if unknown:
        line = next(
            (n for n, text in enumerate(source.lines, 1) if text.strip().startswith(unknown[0])),
            0,
        )
        raise source.error(
            line, f"unknown top-level key '{unknown[0]}': expected [[rule]] tables and languages"
        )
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise source.error(0, "rules are written as [[rule]] tables")
    checker = _Checker(source, teams, team_channels, frozenset(networks))
    rules = tuple(checker.rule(index, raw) for index, raw in enumerate(raw_rules))
    languages: tuple[str, ...] = ()
    if any(rule.languages for rule in rules):
        named = [code for rule in rules for code in sorted(rule.languages)]
        extra = document.get("languages", [DEFAULT_LANGUAGE])
        line = next(
            (n for n, t in enumerate(source.lines, 1) if t.strip().startswith("languages")), 0
        )
        if not isinstance(extra, list) or not all(isinstance(c, str) for c in extra):
            raise source.error(line, 'languages must be a list of codes, e.g. ["en", "es"]')
        languages = tuple(dict.fromkeys([*(checker.language(line, c) for c in extra), *named]))
    return Rules(rules, languages)


class _Checker:
    def __init__(
        self,
        source: _Source,
        teams: Sequence[str],
        team_channels: Mapping[str, str],
        networks: frozenset[str],
    ) -> None:
        self._source = source
        self._teams = [team.lower() for team in teams]
        self._channels = team_channels
        self._networks = networks

    def rule(self, index: int, raw: dict[str, Any]) -> Rule:
        source = self._source
        for key in raw:
            if key not in (*CONDITIONS, *EFFECTS, "name"):
                raise source.error(
                    source.key_line(index, key),
                    f"unknown key '{key}' in rule {index + 1}; a rule has "
                    f"{', '.join(CONDITIONS)} (conditions) and {', '.join(EFFECTS)}",
                )
        if not any(key in raw for key in EFFECTS):
            raise source.error(
                source.rule_line(index), f"rule {index + 1} sets no team, priority or tags"
            )

        def strings(key: str) -> list[str]:
            value = raw.get(key, [])
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise source.error(
                    source.key_line(index, key), f"{key} must be a string or a list of strings"
                )
            return values

        def line(key: str) -> int:
            return source.key_line(index, key)

        networks = {n.strip().lower() for n in strings("network")}
        for network in sorted(networks - self._networks):
            raise source.error(
                line("network"),
                f"unknown network '{network}' (networks: {', '.join(sorted(self._networks))})",
            )
        keywords = tuple(_words(k) for k in strings("keywords"))
        if any(not k.strip() for k in keywords):
            raise source.error(line("keywords"), "a keyword must contain a letter or a digit")
        patterns = []
        for pattern in strings("regex"):
            try:
                patterns.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise source.error(
                    line("regex"), f"regex '{pattern}' is not a valid regular expression: {exc}"
                ) from None
        languages = frozenset(self.language(line("language"), c) for c in strings("language"))
        handles = frozenset(_handle(h) for h in strings("handle") if _handle(h))
        return Rule(
            networks=frozenset(networks),
            keywords=keywords,
            patterns=tuple(patterns),
            languages=languages,
            handles=handles,
            team=self._team(raw, index),
            priority=self._priority(raw, index),
            tags=self._tags(strings("tags"), line("tags")),
        )

    def language(self, line: int, code: str) -> str:
        from langidentify import Language

        found = Language.from_string(code.strip())
        if found == Language.UNKNOWN or not code.strip():
            raise self._source.error(
                line, f"unknown language '{code}': use an ISO 639-1 code such as en, es, fr, de"
            )
        return str(found.iso_code)

    def _team(self, raw: dict[str, Any], index: int) -> str | None:
        if "team" not in raw:
            return None
        line = self._source.key_line(index, "team")
        team = raw["team"]
        if not isinstance(team, str) or team.lower() not in self._teams:
            raise self._source.error(
                line, f"unknown team {team!r} (TEAMS: {', '.join(self._teams)})"
            )
        team = team.lower()
        if not self._channels.get(team):
            raise self._source.error(
                line,
                f"team '{team}' has no channel for its new conversations: set "
                f"SLACK_TEAM_CHANNEL_{team.upper()} to its channel ID",
            )
        return str(team)

    def _priority(self, raw: dict[str, Any], index: int) -> str | None:
        if "priority" not in raw:
            return None
        priority = raw["priority"]
        if not isinstance(priority, str) or priority.lower() not in PRIORITIES:
            raise self._source.error(
                self._source.key_line(index, "priority"),
                f"unknown priority {priority!r} (priorities: {', '.join(PRIORITIES)})",
            )
        return str(priority.lower())

    def _tags(self, tags: list[str], line: int) -> tuple[str, ...]:
        cleaned = []
        for tag in tags:
            tag = tag.strip().lower()
            if not is_tag(tag):
                raise self._source.error(
                    line, f"tag '{tag}' must be {TAG_RULE}, starting with a letter or digit"
                )
            cleaned.append(tag)
        return tuple(dict.fromkeys(cleaned))
