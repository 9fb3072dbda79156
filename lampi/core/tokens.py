"""Self-contained Keystone tokens.

A token is a Fernet token (AES-128-CBC + HMAC-SHA256, from ``cryptography``) whose
plaintext is a small JSON payload: user, project scope, roles, methods, issue and
expiry times and an audit id. Every worker that shares the key file verifies a token
without a lookup; revocation is by audit id (see ``MetaStore.revoke_token``).

Keys are the ring ``fernet`` (``lampi.store.keyring``): files ``<data-dir>/keys/fernet-*``
(mode 0600) on one node, or rows of the metadata store's keys table, sealed with the
master key, shared by every gateway. The newest key signs; all keys verify. A token
that does not verify makes the codec look at the ring again (one read of the ring):
a key another gateway (or ``lampi token rotate-key``) made since is then taken in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


@dataclass(frozen=True, slots=True)
class TokenData:
    user_id: str
    project_id: str | None
    roles: tuple[str, ...]
    methods: tuple[str, ...]
    issued_at: float
    expires_at: float
    audit_id: str
    audit_chain: tuple[str, ...] = ()


def load_keys(key_dir: Path) -> MultiFernet:
    """Load (creating on first use) the Fernet keys in ``key_dir``."""
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = sorted(key_dir.glob("fernet-*"))
    if not files:
        tmp = key_dir / f".fernet-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, key_dir / "fernet-0")  # atomic: the first process wins
        except FileExistsError:
            pass
        os.unlink(tmp)
        files = sorted(key_dir.glob("fernet-*"))
    files.sort(key=lambda p: int(p.name.split("-", 1)[1]) if p.name.split("-", 1)[1].isdigit() else -1)
    keys = [Fernet(p.read_bytes().strip()) for p in reversed(files)]
    return MultiFernet(keys)


class TokenError(Exception):
    pass


class _NotOurKey(TokenError):
    """Well-formed, but no key in memory verifies it: forged, or signed with a key the
    ring gained since it was read."""


class TokenCodec:  # noqa: D101 - see the module's docstring
    # Verified tokens, by their exact text: a token is sent with every request, and
    # verifying it (base64, AES, HMAC, JSON) was ~8% of a small PUT's server CPU. Only
    # a token that verified is kept; its expiry is checked on every use, and
    # revocation is checked by the caller on every use (IdentityService.validate).
    _VERIFIED_MAX = 4096

    def __init__(self, keys: MultiFernet | Any) -> None:
        """``keys``: a fixed MultiFernet, or a key ring (``KeyRing``/``StoredKeyRing``),
        followed as it changes."""
        self._ring = None if isinstance(keys, MultiFernet) else keys
        self._ids: tuple[str, ...] = ()
        self._f = keys if isinstance(keys, MultiFernet) else self._from_ring()
        self._verified: dict[str, TokenData] = {}

    def _from_ring(self) -> MultiFernet:
        """Follow the ring (may read its source: for threads, tests and admin commands)."""
        ring = self._ring
        ring.primary(create=True)
        ring.key_ids()
        return self._take(*ring.snapshot())

    def _take(self, ids: tuple[str, ...], raws: dict[str, bytes]) -> MultiFernet:
        """The keys ``ids`` (oldest first) of the ring as in memory: no read."""
        if ids != self._ids or not hasattr(self, "_f"):
            if set(self._ids) - set(ids) and hasattr(self, "_verified"):
                self._verified.clear()  # a key was removed: the tokens it signed no longer verify
            # the newest first: it signs, every one verifies
            self._f = MultiFernet([Fernet(base64.urlsafe_b64encode(raws[k])) for k in reversed(ids)])
            self._ids = ids
        return self._f

    def _follow(self) -> bool:
        """Take in keys the ring gained or lost; whether anything changed."""
        if self._ring is None:
            return False
        self._ring.refresh()
        before = self._ids
        self._from_ring()
        return self._ids != before

    # -- from the event loop: the ring's reads run on a thread (StoredKeyRing: a query) --

    async def prepare(self) -> None:
        """Before ``issue`` on the event loop: the ring's primary as it is now (read on a
        thread when older than a second), so that ``issue`` reads nothing."""
        if self._ring is not None:
            await self._ring.aprimary(create=True)
            self._take(*self._ring.snapshot())

    async def aissue(self, *args: Any, **kwargs: Any) -> tuple[str, TokenData]:
        """``issue`` for the event loop."""
        await self.prepare()
        return self._issue(*args, **kwargs)

    async def adecode(self, token: str) -> TokenData:
        """``decode`` for the event loop: a token no key in memory verifies makes the
        ring look again on a thread (one look at a time)."""
        data = self._verified.get(token)
        if data is None:
            f = self._f
            try:
                data = self._decode(token, follow=False)
            except _NotOurKey:
                if self._ring is None:
                    raise TokenError("invalid token") from None
                await self._ring.arefresh()
                self._take(*self._ring.snapshot())
                if self._f is f:
                    raise TokenError("invalid token") from None
                try:
                    data = self._decode(token, follow=False)
                except _NotOurKey:
                    raise TokenError("invalid token") from None
            self._remember(token, data)
        if data.expires_at <= time.time():
            raise TokenError("token expired")
        return data

    def issue(self, *args: Any, **kwargs: Any) -> tuple[str, TokenData]:
        """A new token (``_issue``'s arguments), signed with the ring's newest key; may
        read the ring (``aissue`` on the event loop)."""
        if self._ring is not None:
            self._from_ring()  # sign with the newest key (files: one listdir; a table: read at most once a second)
        return self._issue(*args, **kwargs)

    def _issue(
        self,
        user_id: str,
        project_id: str | None,
        roles: tuple[str, ...],
        methods: tuple[str, ...],
        ttl: float,
        expires_at: float | None = None,
        audit_chain: tuple[str, ...] = (),
    ) -> tuple[str, TokenData]:
        now = time.time()
        data = TokenData(
            user_id=user_id,
            project_id=project_id,
            roles=roles,
            methods=methods,
            issued_at=now,
            expires_at=expires_at if expires_at is not None else now + ttl,
            audit_id=base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode(),
            audit_chain=audit_chain,
        )
        payload = json.dumps(
            [data.user_id, data.project_id, list(data.roles), list(data.methods), data.issued_at,
             data.expires_at, data.audit_id, list(data.audit_chain)],
            separators=(",", ":"),
        ).encode()
        token = self._f.encrypt(payload).decode().rstrip("=")
        return token, data

    def decode(self, token: str) -> TokenData:
        """Verify and decrypt; raise TokenError when forged, malformed or expired."""
        data = self._verified.get(token)
        if data is None:
            data = self._decode(token)
            self._remember(token, data)
        if data.expires_at <= time.time():
            raise TokenError("token expired")
        return data

    def _remember(self, token: str, data: TokenData) -> None:
        if len(self._verified) >= self._VERIFIED_MAX:
            self._verified.pop(next(iter(self._verified)), None)  # the oldest
        self._verified[token] = data

    def _decode(self, token: str, follow: bool = True) -> TokenData:
        """Verify and parse; ``follow``: a token no key verifies makes the ring look again
        here (a read), else it raises ``_NotOurKey``."""
        if not token or len(token) > 4096:
            raise TokenError("malformed token")
        padded = token + "=" * (-len(token) % 4)
        try:
            # Only the canonical base64 form is accepted: base64 decoding ignores the
            # unused low bits of the last character, so without this check several
            # spellings of one token would all verify.
            if base64.urlsafe_b64encode(base64.urlsafe_b64decode(padded)).decode() != padded:
                raise ValueError("non-canonical token encoding")
            try:
                raw = self._f.decrypt(padded.encode())
            except InvalidToken:
                if not follow:
                    raise _NotOurKey("invalid token") from None
                if not self._follow():  # signed with a key made elsewhere since we last looked?
                    raise
                raw = self._f.decrypt(padded.encode())
            f = json.loads(raw)
            if not isinstance(f, list):  # only our own key can get here, but never crash
                raise ValueError("token payload is not a list")
            data = TokenData(f[0], f[1], tuple(f[2]), tuple(f[3]), float(f[4]), float(f[5]), f[6], tuple(f[7]))
        except (InvalidToken, ValueError, TypeError, IndexError, UnicodeError, binascii.Error):
            raise TokenError("invalid token") from None
        return data
