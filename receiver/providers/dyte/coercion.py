"""Coercions of Dyte values, shared by the webhook payload models and the REST models.

Dyte sends the same oddities in webhook payloads and REST answers
(``shared/dyte/FACTS.md``, "Payload quirks"; the v2 spec's own examples):

* ``null``, ``""``, ``"null"`` and ``"undefined"`` mean "absent"
  (:func:`receiver.timeparse.is_nullish`, re-exported here);
* numbers may arrive as strings (``"12"``, ``"12.5"``);
* timestamps come in two formats (``2022-12-13T06:57:09.736Z`` and
  ``2023-01-25 04:51:35.903816Z``) and become aware UTC datetimes
  (:func:`to_timestamp`, via :mod:`receiver.timeparse`).

Every function here is pure and raises only :class:`CoercionError`, whose
message never quotes the value (a value may be a secret such as a stream
key). What an error means is the model's policy:

* REST models (:mod:`.rest_models`) are lenient: the field becomes ``None``
  and is named in ``invalid_fields``; they look their converters up with
  :func:`converter_for` (:func:`to_int`, :func:`to_float`, :func:`to_bool`,
  :func:`to_str`, :func:`to_str_tuple`, :func:`to_secret`,
  :func:`to_timestamp`);
* webhook models (:mod:`.event_models`) are strict: a malformed field is a
  validation error naming its path. They use the pydantic types
  :data:`OptTimestamp`, :data:`FileSizeBytes` and :data:`DurationSeconds`,
  whose validators turn a :class:`CoercionError` into a
  :class:`pydantic_core.PydanticCustomError` with the same kind and message.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr
from pydantic_core import PydanticCustomError

from receiver.timeparse import NULL_TEXTS, TimestampError, is_nullish, parse_optional_timestamp

__all__ = [
    "MAX_FILE_SIZE",
    "NULL_TEXTS",
    "CoercionError",
    "DurationSeconds",
    "FileSizeBytes",
    "OptTimestamp",
    "converter_for",
    "is_nullish",
    "pydantic_validator",
    "to_bool",
    "to_duration_seconds",
    "to_file_size",
    "to_float",
    "to_int",
    "to_number",
    "to_secret",
    "to_str",
    "to_str_tuple",
    "to_timestamp",
]

#: Largest file size accepted, bytes (fits a signed 64-bit database column).
MAX_FILE_SIZE = 2**63 - 1
# Numeric text accepted by the strict (webhook) coercions: no sign, no exponent, at most 20 digits a part.
_WHOLE_TEXT = re.compile(r"^[0-9]{1,20}$")
_DECIMAL_TEXT = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")


class CoercionError(ValueError):
    """A present value that cannot be read as the wanted type.

    Attributes:
        kind: short machine name (``timestamp``, ``number``, ``file_size``, ...);
            the error type of the pydantic error it becomes.
        message: human text that never quotes the value; ``str(error) == message``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message))


# --------------------------------------------------------------------------
# Lenient coercions (REST models; also the building blocks)
# --------------------------------------------------------------------------


def to_number(value: object) -> int | float:
    """A finite ``int`` or ``float`` from a JSON number or numeric text (``" 12 "``, ``"12.5"``, ``"1e3"``).

    Raises:
        CoercionError: a boolean, another type, unreadable text, NaN or an infinity.
    """
    if isinstance(value, bool):
        raise CoercionError("number_type", "expected a number")
    if isinstance(value, (int, float)):
        number: float | int = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise CoercionError("number", "expected a number") from None
    else:
        raise CoercionError("number_type", "expected a number")
    if isinstance(number, float) and not math.isfinite(number):
        raise CoercionError("number_range", "number out of range")
    return number


def to_int(value: object) -> int:
    """A whole number as ``int`` (``12``, ``12.0``, ``"12"``); see :func:`to_number`.

    Raises:
        CoercionError: not a number, or a fraction.
    """
    number = to_number(value)
    if isinstance(number, float):
        if not number.is_integer():
            raise CoercionError("whole_number", "expected a whole number")
        return int(number)
    return number


def to_float(value: object) -> float:
    """A number as ``float``; see :func:`to_number`.

    Raises:
        CoercionError: not a number, or an integer too large for a float.
    """
    try:
        return float(to_number(value))
    except OverflowError:
        raise CoercionError("number_range", "number out of range") from None


def to_bool(value: object) -> bool:
    """``True``/``False``, ``1``/``0`` or the texts ``true``/``false``, ``1``/``0``, ``yes``/``no`` (any case).

    Raises:
        CoercionError: anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
    raise CoercionError("bool", "expected a boolean")


def to_str(value: object) -> str:
    """A string as sent, or a number (not a boolean) as its text (``12`` -> ``"12"``).

    Raises:
        CoercionError: another type.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CoercionError("string_type", "expected a string")


def to_str_tuple(value: object) -> tuple[str, ...]:
    """A list of strings as a tuple (null-like items dropped); one string gives a 1-tuple.

    Raises:
        CoercionError: not a string or list, or an item that is not a string or number.
    """
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(to_str(item) for item in value if not is_nullish(item))
    raise CoercionError("list_type", "expected a list of strings")


def to_secret(value: object) -> SecretStr:
    """A :class:`~pydantic.SecretStr` of :func:`to_str` (masked in ``repr`` and JSON dumps).

    Raises:
        CoercionError: not a string or number.
    """
    if isinstance(value, SecretStr):
        return value
    return SecretStr(to_str(value))


def to_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from either Dyte format (or epoch seconds); ``None`` for null-like values.

    Raises:
        CoercionError: ``timestamp_type`` for a boolean or a type that is not
            text, a number or a datetime (checked first, so that no ``repr`` of
            large junk is built); ``timestamp`` for malformed text.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float, datetime))):
        raise CoercionError("timestamp_type", "expected a timestamp string")
    try:
        return parse_optional_timestamp(value)
    except (TimestampError, ValueError, OverflowError, TypeError, RecursionError):
        raise CoercionError("timestamp", "malformed timestamp") from None


Converter = Callable[[object], Any]

_CONVERTERS: dict[Any, Converter] = {
    datetime: to_timestamp,
    int: to_int,
    float: to_float,
    bool: to_bool,
    str: to_str,
    SecretStr: to_secret,
}


def converter_for(annotation: Any) -> Converter | None:
    """The lenient converter of a field annotation (``X`` or ``X | None``), or None when there is none.

    ``datetime`` -> :func:`to_timestamp`, ``int`` -> :func:`to_int`, ``float``
    -> :func:`to_float`, ``bool`` -> :func:`to_bool`, ``str`` -> :func:`to_str`,
    ``SecretStr`` -> :func:`to_secret`, ``tuple[str, ...]`` -> :func:`to_str_tuple`.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin is tuple:
        return to_str_tuple if typing.get_args(annotation)[:1] == (str,) else None
    return _CONVERTERS.get(annotation)


# --------------------------------------------------------------------------
# Strict coercions (webhook payload models)
# --------------------------------------------------------------------------


def to_file_size(value: object) -> int | None:
    """Bytes as an ``int``: a whole JSON number or digits-only text (``"1234"``); ``None`` when null-like.

    Rule: ``recording.fileSize`` is a number or a numeric string (FACTS.md).

    Raises:
        CoercionError: ``file_size`` for a boolean, a fraction, text other than
            digits or another type; ``file_size`` "out of range" outside
            ``0..MAX_FILE_SIZE``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CoercionError("file_size", "expected a whole number of bytes")
    if isinstance(value, int):
        size = value
    elif isinstance(value, float):
        if not value.is_integer():  # also rejects NaN and infinities
            raise CoercionError("file_size", "expected a whole number of bytes")
        size = int(value)
    elif isinstance(value, str):
        if is_nullish(value):
            return None
        text = value.strip()
        if not _WHOLE_TEXT.match(text):
            raise CoercionError("file_size", "expected a whole number of bytes")
        size = int(text)
    else:
        raise CoercionError("file_size", "expected a whole number of bytes")
    if size < 0 or size > MAX_FILE_SIZE:
        raise CoercionError("file_size", "file size out of range")
    return size


def to_duration_seconds(value: object) -> float | None:
    """Seconds as a finite, non-negative ``float``: a JSON number or plain decimal text (``"12.5"``).

    Rule: ``recording.recordingDuration`` is in seconds (webhook payloads).

    Raises:
        CoercionError: ``duration`` for a boolean, other text or another type,
            and "out of range" for NaN, infinities and negative values.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CoercionError("duration", "expected a number of seconds")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise CoercionError("duration", "duration out of range") from None
    elif isinstance(value, str):
        if is_nullish(value):
            return None
        text = value.strip()
        if not _DECIMAL_TEXT.match(text):
            raise CoercionError("duration", "expected a number of seconds")
        seconds = float(text)
    else:
        raise CoercionError("duration", "expected a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise CoercionError("duration", "duration out of range")
    return seconds


def pydantic_validator(coerce: Callable[[object], Any]) -> Callable[[object], Any]:
    """``coerce`` for a pydantic ``BeforeValidator``: its :class:`CoercionError` becomes a ``PydanticCustomError``.

    The pydantic error has the same type (``kind``) and message, so a
    validation error names the field's path and never its value.
    """

    def validate(value: object) -> Any:
        try:
            return coerce(value)
        except CoercionError as exc:
            raise PydanticCustomError(exc.kind, exc.message) from None

    validate.__name__ = validate.__qualname__ = getattr(coerce, "__name__", "validate")
    validate.__doc__ = coerce.__doc__
    return validate


#: An optional timestamp field: aware UTC datetime, ``None`` when null-like (:func:`to_timestamp`).
OptTimestamp = Annotated[datetime | None, BeforeValidator(pydantic_validator(to_timestamp))]
#: An optional file size, bytes (:func:`to_file_size`).
FileSizeBytes = Annotated[int | None, BeforeValidator(pydantic_validator(to_file_size))]
#: An optional duration, seconds (:func:`to_duration_seconds`).
DurationSeconds = Annotated[float | None, BeforeValidator(pydantic_validator(to_duration_seconds))]
