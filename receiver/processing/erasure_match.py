"""Who an erasure is about, found in stored payloads: pure functions, no I/O (see :mod:`receiver.processing.erasure`).

:class:`Identity` collects every identifier and name of the person;
:func:`participants` finds participant objects in a payload (webhook
camelCase or REST snake_case: objects with a peer id); :meth:`Identity.matches`
says whether one is the person; :func:`scrub_payload` removes the objects
and fields that carry the person's identifiers (an ``organizedBy`` of the
person, for instance); :func:`mentions` is the final check that no
identifier or name is left in a rewritten body, in any encoding stored
(:func:`needle_forms`: raw UTF-8 and JSON-escaped).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from receiver.enums import ErasureSubject

__all__ = [
    "Identity",
    "first_value",
    "objects",
    "participants",
    "needle_forms",
    "decode_body",
    "scrub_payload",
    "mentions",
]

# How deep the payload walk goes (Dyte payloads are 3 levels deep).
_MAX_DEPTH = 32

# Keys of a participant object (webhook camelCase, REST snake_case).
_PEER_KEYS = ("peerId", "peer_id")
_CUSTOM_KEYS = ("customParticipantId", "custom_participant_id", "clientSpecificId", "client_specific_id")
_USER_KEYS = ("userId", "user_id")
_NAME_KEYS = ("userDisplayName", "displayName", "display_name", "name")


@dataclass
class Identity:
    """Everything that identifies the person, as found so far: sets of ids (strings) and display names."""

    keys: set[str] = field(default_factory=set)
    custom_ids: set[str] = field(default_factory=set)
    user_ids: set[str] = field(default_factory=set)
    peer_ids: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    @classmethod
    def seed(cls, kind: ErasureSubject, value: str) -> Identity:
        """The identity known from the request alone: ``value`` as a key, user id or custom id."""
        identity = cls()
        if kind is ErasureSubject.PARTICIPANT:
            identity.keys.add(value)
        elif kind is ErasureSubject.USER_ID:
            identity.user_ids.add(value)
        else:
            identity.custom_ids.add(value)
        return identity

    def identifiers(self) -> set[str]:
        """Every id of the person (not names): what bodies are searched for."""
        return self.keys | self.custom_ids | self.user_ids | self.peer_ids

    def absorb_interval(self, row: Mapping[Any, Any]) -> None:
        """Add what a ``participant_intervals`` row (key, peer id, custom id, user id, display name) holds."""
        self.keys.add(row["participant_key"])
        self.peer_ids.add(row["peer_id"])
        for attr, target in (("custom_participant_id", self.custom_ids), ("user_id", self.user_ids)):
            if row[attr]:
                target.add(row[attr])
        if row["display_name"]:
            self.names.add(row["display_name"])

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """True when participant object ``obj`` (webhook or REST shape) is the person."""
        peer = first_value(obj, _PEER_KEYS)
        custom = first_value(obj, _CUSTOM_KEYS)
        user = first_value(obj, _USER_KEYS)
        key = custom or peer
        return bool(
            (peer and peer in self.peer_ids)
            or (custom and custom in self.custom_ids)
            or (user and user in self.user_ids)
            or (key and key in self.keys)
        )

    def absorb_participant(self, obj: Mapping[str, Any]) -> None:
        """Add what a participant object of the person holds: its ids, its key and its display names."""
        peer = first_value(obj, _PEER_KEYS)
        custom = first_value(obj, _CUSTOM_KEYS)
        user = first_value(obj, _USER_KEYS)
        for value, target in ((peer, self.peer_ids), (custom, self.custom_ids), (user, self.user_ids)):
            if value:
                target.add(value)
        key = custom or peer
        if key:
            self.keys.add(key)
        for name_key in _NAME_KEYS:
            name = obj.get(name_key)
            if isinstance(name, str) and name:
                self.names.add(name)


def first_value(obj: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    """The first non-empty string under one of ``keys`` (alias spellings), else None."""
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def objects(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, outermost first."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from objects(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from objects(item, depth + 1)


def participants(payload: Any) -> Iterator[dict[str, Any]]:
    """Participant objects of a payload: objects with a peer id."""
    return (obj for obj in objects(payload) if first_value(obj, _PEER_KEYS))


def needle_forms(value: str) -> set[bytes]:
    """How ``value`` can appear in a stored body: raw UTF-8 and JSON-escaped (ASCII and UTF-8)."""
    return {
        value.encode("utf-8", "surrogatepass"),
        json.dumps(value)[1:-1].encode("ascii"),
        json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass"),
    }


def decode_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def scrub_payload(payload: Any, identity: Identity, depth: int = 0) -> Any:
    """``payload`` without the objects and string fields that carry one of the person's identifiers."""
    ids = identity.identifiers()

    def tainted(value: Any) -> bool:
        if isinstance(value, str):
            return value in ids
        if isinstance(value, dict):
            return identity.matches(value) or any(
                isinstance(value.get(k), str) and value[k] in ids for k in ("id", *_USER_KEYS)
            )
        return False

    if depth > _MAX_DEPTH:
        return payload
    if isinstance(payload, dict):
        return {k: scrub_payload(v, identity, depth + 1) for k, v in payload.items() if not tainted(v)}
    if isinstance(payload, list):
        return [scrub_payload(v, identity, depth + 1) for v in payload if not tainted(v)]
    return payload


def mentions(raw: bytes, identity: Identity) -> bool:
    """True when any identifier or name of the person occurs in ``raw`` (any encoding we store)."""
    forms = {form for value in identity.identifiers() | identity.names for form in needle_forms(value)}
    return any(form in raw for form in forms)
