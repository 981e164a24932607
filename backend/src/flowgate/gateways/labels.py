"""Gateway labels: the key/value rules, and how the effective labels are put together.

Keys and values follow the Kubernetes label rules, checked the same way on every path (REST
registration, ``PATCH``, OpAMP agent attributes, selectors):

- key: an optional prefix and a name, ``[prefix/]name``. The name is 1-63 characters,
  ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``; the prefix is a DNS subdomain (lower-case
  DNS labels joined by dots, at most 253 characters).
- value: empty, or 1-63 characters of the same form as a name.

A gateway's labels come in two layers, and what selectors match is the combination:

- **agent** labels: what the gateway says about itself. A REST registration's ``labels`` merged
  over its ``metadata.labels`` (top-level wins); an OpAMP agent's non-identifying attributes
  named ``flowgate.label.<key>`` (replaced whenever the agent's description changes).
- **manual** labels: what people set with ``PATCH /api/v1/gateways/{id}``. A PATCH makes the
  effective labels exactly its body: keys in the body get its values, and every key the agent
  reports that is not in the body is hidden. The agent never changes a key people set or hid;
  a key it first reports after the PATCH shows.

``effective = agent labels (minus hidden keys), overlaid by the values people set``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: OpAMP non-identifying attributes with this prefix become agent labels (prefix removed).
AGENT_ATTRIBUTE_PREFIX = "flowgate.label."
#: At most this many labels per gateway (and per layer).
MAX_LABELS = 200
NAME_MAX = 63
PREFIX_MAX = 253
#: Longest possible key: prefix + "/" + name.
KEY_MAX = PREFIX_MAX + 1 + NAME_MAX
#: Stored values may be longer than the rule allows (labels kept from before the rule);
#: the column holds the old limit so such a label still lives in every layer.
STORED_VALUE_MAX = 255

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

#: The manual layer: a value people set, or None for a key people removed.
Manual = dict[str, str | None]


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the prefix before '/' must not be empty"
        if "/" in prefix:
            return "a key has at most one '/'"
        if len(prefix) > PREFIX_MAX or not _DNS_SUBDOMAIN.fullmatch(prefix):
            return (
                f"the prefix must be a DNS subdomain of at most {PREFIX_MAX} characters "
                "(lower-case letters, digits, '-' and '.')"
            )
    if not name:
        return "the name must not be empty"
    if len(name) > NAME_MAX:
        return f"the name must be at most {NAME_MAX} characters"
    if not _NAME.fullmatch(name):
        return (
            "the name must start and end with a letter or digit and contain only letters, "
            "digits, '-', '_' and '.'"
        )
    return None


def value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None when it is (empty is valid)."""
    if not value:
        return None
    if len(value) > NAME_MAX:
        return f"a value must be at most {NAME_MAX} characters"
    if not _NAME.fullmatch(value):
        return (
            "a value must be empty or start and end with a letter or digit and contain only "
            "letters, digits, '-', '_' and '.'"
        )
    return None


def label_problem(key: str, value: str | None) -> str | None:
    """Why the label is invalid (the message names the key), or None."""
    problem = key_problem(key)
    if problem is not None:
        return f"label key {key[:80]!r}: {problem}"
    if value is not None:
        problem = value_problem(value)
        if problem is not None:
            return f"label {key!r} value {value[:80]!r}: {problem}"
    return None


def check_labels(labels: Mapping[str, Any], *, allow_none: bool = False) -> None:
    """Raise ValueError naming the first invalid label (for request validation)."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(key, str):
            raise ValueError("label keys must be strings")
        if value is None and allow_none:
            continue
        if not isinstance(value, str):
            raise ValueError(f"label {key!r}: values must be strings")
        problem = label_problem(key, value)
        if problem is not None:
            raise ValueError(problem)


def effective(agent: Mapping[str, str], manual: Mapping[str, str | None]) -> dict[str, str]:
    """The labels selectors match: agent labels minus hidden keys, overlaid by people's."""
    merged = {k: v for k, v in agent.items() if k not in manual}
    merged.update({k: v for k, v in manual.items() if v is not None})
    return dict(sorted(merged.items()))


def manual_after_patch(
    body: Mapping[str, str], agent: Mapping[str, str], manual: Mapping[str, str | None]
) -> Manual:
    """The manual layer after ``PATCH {"labels": body}``: the body's values, with every key the
    agent reports (or people hid before) and the body leaves out hidden, so the effective
    labels are exactly ``body``. A key people had set and now leave out is simply dropped."""
    hidden: Manual = {k: None for k in agent if k not in body}
    hidden.update({k: None for k, v in manual.items() if v is None and k not in body})
    return {**hidden, **body}


def registration_labels(labels: Mapping[str, str], metadata: Mapping[str, Any]) -> dict[str, str]:
    """A REST registration's agent labels: ``metadata.labels`` overlaid by the top-level
    ``labels`` (both already validated)."""
    nested = metadata.get("labels")
    merged = dict(nested) if isinstance(nested, Mapping) else {}
    merged.update(labels)
    return merged


def from_attributes(attributes: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Agent labels from OpAMP non-identifying attributes named ``flowgate.label.<key>``.

    Returns (labels, problems): an attribute whose key or value breaks the label rules is left
    out and described in ``problems`` (for the log); the others still apply. Non-string values
    (booleans, numbers) are taken in their text form.
    """
    found: dict[str, str] = {}
    problems: list[str] = []
    for name, raw in attributes.items():
        if not name.startswith(AGENT_ATTRIBUTE_PREFIX):
            continue
        key = name[len(AGENT_ATTRIBUTE_PREFIX) :]
        if isinstance(raw, bool):
            value = "true" if raw else "false"
        elif isinstance(raw, str | int | float):
            value = str(raw)
        else:
            problems.append(f"label {key[:80]!r}: the value must be a string")
            continue
        problem = label_problem(key, value)
        if problem is not None:
            problems.append(problem)
            continue
        if len(found) >= MAX_LABELS:
            problems.append(f"more than {MAX_LABELS} labels; the rest are ignored")
            break
        found[key] = value
    return dict(sorted(found.items())), problems
