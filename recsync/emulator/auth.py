"""OAuth client credentials and bearer tokens of the emulated orgs."""

from __future__ import annotations

import base64
import binascii
import secrets

import attrs

from recsync.emulator.clock import Clock
from recsync.emulator.scenario import OrgSpec


@attrs.frozen
class Token:
    """An access token issued to one org's OAuth client."""

    value: str
    org_id: str
    client_id: str
    expires_at_s: float


class TokenRejected(Exception):
    """A bearer token that is unknown (``bad.credentials``) or expired."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


class TokenBook:
    """Issues random per-org tokens and checks them on every API request."""

    def __init__(self, orgs: tuple[OrgSpec, ...], clock: Clock) -> None:
        self._clients = {org.client_id: org for org in orgs}
        self._tokens: dict[str, Token] = {}
        self._clock = clock

    def issue(self, client_id: str, client_secret: str) -> tuple[Token, OrgSpec] | None:
        """Return a new token for valid credentials, or None when they are wrong."""
        org = self._clients.get(client_id)
        if org is None or not secrets.compare_digest(org.client_secret, client_secret):
            return None
        token = Token(
            value=secrets.token_urlsafe(32),
            org_id=org.id,
            client_id=org.client_id,
            expires_at_s=self._clock.now() + org.token_lifetime_s,
        )
        self._tokens[token.value] = token
        return token, org

    def check(self, authorization: str | None) -> Token:
        """Return the token of a ``Bearer`` header; raise TokenRejected otherwise."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise TokenRejected(
                "bad.credentials", "Authorization header with a Bearer token is missing"
            )
        token = self._tokens.get(value.strip())
        if token is None:
            raise TokenRejected("bad.credentials", "Invalid login credentials.")
        if self._clock.now() >= token.expires_at_s:
            raise TokenRejected("credentials.expired", "Your credentials have expired.")
        return token

    def revoke_all(self, org_id: str) -> int:
        """Forget every token of an org; return how many there were."""
        doomed = [key for key, token in self._tokens.items() if token.org_id == org_id]
        for key in doomed:
            del self._tokens[key]
        return len(doomed)


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """Return (client_id, client_secret) from a ``Basic`` header, or None."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        return None
    return client_id, client_secret
