"""Dyte webhook signatures: RSA PKCS#1 v1.5 with SHA-256, base64 in ``dyte-signature``.

Rule (``shared/dyte/FACTS.md``, "Signature"): Dyte signs the request payload;
its own Node sample verifies over ``JSON.stringify(parsedBody)``. So
:func:`verify_signature` tries the raw bytes first and the compact
re-serialisation of the parsed JSON second. The receive path
(:mod:`receiver.ingest.endpoint`) uses the parts, :func:`decode_signature`
and :func:`signature_matches`, to check the raw bytes before it parses
anything and to parse only for the fallback.

What a compact match proves: the *compact form* was signed, not the bytes
that arrived (any body that parses to the same JSON - padded with spaces, or
a leading duplicate key holding junk - matches too). So the bytes to keep
are the compact ones (:func:`compact_json`), never the received ones.

Everything here is pure (no I/O). Any failure, malformed header included,
raises exactly one exception type: :class:`SignatureError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from receiver.errors import ReceiverError
from receiver.providers.base import WebhookScheme

__all__ = [
    "DYTE_WEBHOOK_SCHEME",
    "SignatureError",
    "decode_signature",
    "signature_matches",
    "verify_signature",
    "sign_body",
    "load_public_key",
    "load_private_key",
    "generate_private_key",
    "private_key_pem",
    "public_key_pem",
    "compact_json",
    "public_keys_from_document",
]

#: The headers of a Dyte delivery (FACTS.md, "Delivery").
DYTE_WEBHOOK_SCHEME = WebhookScheme(
    name="dyte",
    signature_header="dyte-signature",
    delivery_id_header="dyte-uuid",
    webhook_id_header="dyte-webhook-id",
)

# Largest signature we will even try to decode: 16384-bit RSA is 2 KiB.
_MAX_SIGNATURE_CHARS = 4096


class SignatureError(ReceiverError):
    """The delivery's signature is missing, malformed, or matches no trusted key."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def compact_json(parsed: Any) -> bytes:
    """Serialise like JavaScript's ``JSON.stringify``: no spaces, key order kept, UTF-8.

    Lone surrogates (``"\\ud800"`` in the received JSON) are written as
    ``\\uXXXX`` escapes, as JSON.stringify does (ES2019); UTF-8 cannot hold them.
    """
    text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def decode_signature(header: str | None) -> bytes:
    """The raw signature bytes of a ``dyte-signature`` / ``rtk-signature`` header value (base64).

    Checks only the form (no key is needed), so a caller can refuse a
    missing or garbled header before fetching any key document.

    Raises:
        SignatureError: missing, blank, longer than 4096 characters, or not base64.
    """
    if header is None or not header.strip():
        raise SignatureError("missing signature header (dyte-signature or rtk-signature)")
    if len(header) > _MAX_SIGNATURE_CHARS:
        raise SignatureError("signature header too long")
    try:
        return base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("signature header is not valid base64") from exc


def _matches(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


def signature_matches(message: bytes, signature: bytes, public_keys: Sequence[rsa.RSAPublicKey]) -> bool:
    """True when ``signature`` (from :func:`decode_signature`) is RSA PKCS#1 v1.5 SHA-256 over ``message`` by any key."""
    return any(_matches(key, signature, message) for key in public_keys)


def verify_signature(
    raw_body: bytes,
    signature_header: str | None,
    public_keys: Sequence[rsa.RSAPublicKey],
    parsed_body: Any = None,
) -> str:
    """Check ``signature_header`` against ``raw_body`` with any of ``public_keys``.

    Args:
        raw_body: the request body exactly as received.
        signature_header: value of the ``dyte-signature`` header (base64).
        public_keys: trusted RSA public keys (several during a key rotation).
        parsed_body: the parsed JSON, if the caller has it; enables the
            fallback over its compact re-serialisation.

    Returns:
        ``"raw"`` when the signature covers the raw bytes, ``"compact"`` when
        it covers the compact re-serialisation.

    Raises:
        SignatureError: missing or malformed header, no keys, or no match.
    """
    signature = decode_signature(signature_header)
    if not public_keys:
        raise SignatureError("no webhook public key is configured or could be fetched")
    for key in public_keys:
        if _matches(key, signature, raw_body):
            return "raw"
    if parsed_body is not None:
        try:
            compact = compact_json(parsed_body)
        except (ValueError, RecursionError):  # nested deeper than the encoder goes: no fallback
            compact = raw_body
        if compact != raw_body:
            for key in public_keys:
                if _matches(key, signature, compact):
                    return "compact"
    raise SignatureError("signature does not match the body with any trusted key")


def sign_body(raw_body: bytes, private_key: rsa.RSAPrivateKey) -> str:
    """Sign ``raw_body`` as Dyte does; returns the base64 ``dyte-signature`` value."""
    signature = private_key.sign(raw_body, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key (for the sandbox, the demo and tests)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM text of a private key, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_key_pem(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    """SubjectPublicKeyInfo PEM text (the format Dyte publishes)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Load an RSA public key from PEM (SPKI ``PUBLIC KEY`` or PKCS#1 ``RSA PUBLIC KEY``).

    Raises:
        ValueError: the text is not an RSA public key.
    """
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    data = data.replace(b"\\n", b"\n").strip()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("webhook public key must be an RSA key")
    return key


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """Load an unencrypted RSA private key from PEM.

    Raises:
        ValueError: the text is not an RSA private key.
    """
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("private key must be an RSA key")
    return key


def _pem_strings(node: Any) -> Iterable[str]:
    """Every PEM-looking string in ``node``, in document order (iterative: any nesting depth)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "-----BEGIN" in item:
                yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def public_keys_from_document(document: Any) -> list[rsa.RSAPublicKey]:
    """Extract every RSA public key from a ``/.well-known/webhooks.json`` document.

    The document's shape is not documented by Dyte; RealtimeKit uses
    ``{"success": true, "data": {"publicKey": "<PEM>"}}``. Any PEM string
    anywhere in the document is accepted (``publicKey``, ``public_key``,
    lists of keys). Strings that are not RSA public keys are skipped.
    """
    keys: list[rsa.RSAPublicKey] = []
    for pem in _pem_strings(document):
        try:
            keys.append(load_public_key(pem))
        except ValueError:
            continue
    return keys
