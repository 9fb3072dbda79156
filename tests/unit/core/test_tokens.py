"""Self-contained Fernet tokens: round trip, forgery, expiry, shared keys, rotation."""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet

from lampi.core.tokens import TokenCodec, TokenError, load_keys


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def issue(codec: TokenCodec, **kw):
    args = dict(user_id="u1", project_id="p1", roles=("member",), methods=("password",), ttl=3600)
    args.update(kw)
    return codec.issue(**args)


def test_round_trip(key_dir):
    codec = TokenCodec(load_keys(key_dir))
    before = time.time()
    token, data = issue(codec, roles=("admin", "member"), audit_chain=("prev",))
    assert "=" not in token and len(token) < 1000
    got = codec.decode(token)
    assert got == data
    assert (got.user_id, got.project_id, got.roles, got.methods, got.audit_chain) == (
        "u1", "p1", ("admin", "member"), ("password",), ("prev",)
    )
    assert before <= got.issued_at <= time.time()
    assert got.expires_at == pytest.approx(got.issued_at + 3600)
    # unscoped tokens and explicit expiry (re-scoping keeps the original expiry)
    exp = time.time() + 60
    token2, data2 = issue(codec, project_id=None, expires_at=exp, methods=("password", "token"))
    assert codec.decode(token2).project_id is None
    assert codec.decode(token2).expires_at == exp
    # every token gets its own audit id
    assert data.audit_id != data2.audit_id
    # the payload is encrypted, not merely signed
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"u1" not in raw and b"member" not in raw


def flip(token: str, i: int) -> str:
    c = token[i]
    return token[:i] + ("A" if c != "A" else "B") + token[i + 1 :]


def test_tampered_tokens_are_rejected(key_dir):
    codec = TokenCodec(load_keys(key_dir))
    token, _ = issue(codec)
    for i in (0, 5, 20, len(token) // 2, len(token) - 5, len(token) - 1):
        with pytest.raises(TokenError):
            codec.decode(flip(token, i))
    for bad in ["", "x", token[:-10], token + "AAAA", "é" * 50, "gAAAAA" + "!" * 80, "a" * 5000, " " + token]:
        with pytest.raises(TokenError):
            codec.decode(bad)


def test_expired_token_is_rejected(key_dir):
    codec = TokenCodec(load_keys(key_dir))
    token, _ = issue(codec, ttl=-1)
    with pytest.raises(TokenError, match="expired"):
        codec.decode(token)
    token, _ = issue(codec, expires_at=time.time() - 0.001)
    with pytest.raises(TokenError):
        codec.decode(token)


def test_token_from_another_key_set_is_rejected(tmp_path):
    a = TokenCodec(load_keys(tmp_path / "a"))
    b = TokenCodec(load_keys(tmp_path / "b"))
    token, _ = issue(a)
    with pytest.raises(TokenError):
        b.decode(token)
    # a well-formed Fernet token with a valid payload but a foreign key
    foreign = Fernet(Fernet.generate_key()).encrypt(b'["u1","p1",[],[],0,9999999999,"x",[]]').decode()
    with pytest.raises(TokenError):
        a.decode(foreign)


def test_valid_fernet_but_bad_payload_is_rejected(key_dir):
    fernet = load_keys(key_dir)
    codec = TokenCodec(fernet)
    for payload in [b"not json", b"{}", b"[1,2]", b'["u", null, "roles", [], "x", 1, "a", []]', b"\xff\xfe"]:
        with pytest.raises(TokenError):
            codec.decode(fernet.encrypt(payload).decode())


def test_key_file_is_private_and_shared(key_dir):
    f1 = load_keys(key_dir)
    files = sorted(p.name for p in key_dir.iterdir())
    assert files == ["fernet-0"]  # no temp files left behind
    mode = stat.S_IMODE(os.stat(key_dir / "fernet-0").st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(key_dir).st_mode) & 0o077 == 0
    # a second load (another worker) uses the same key: tokens verify both ways
    f2 = load_keys(key_dir)
    assert sorted(p.name for p in key_dir.iterdir()) == ["fernet-0"]
    c1, c2 = TokenCodec(f1), TokenCodec(f2)
    t1, d1 = issue(c1)
    t2, d2 = issue(c2)
    assert c2.decode(t1) == d1
    assert c1.decode(t2) == d2


def test_rotation(key_dir):
    old = TokenCodec(load_keys(key_dir))
    t_old, d_old = issue(old)
    new_key = Fernet.generate_key()
    (key_dir / "fernet-1").write_bytes(new_key)
    rotated = TokenCodec(load_keys(key_dir))
    # old tokens still verify
    assert rotated.decode(t_old) == d_old
    # the new key signs
    t_new, d_new = issue(rotated)
    assert TokenCodec(MultiFernet([Fernet(new_key)])).decode(t_new) == d_new
    with pytest.raises(TokenError):
        old.decode(t_new)
    # numeric order, not lexical: fernet-10 is newer than fernet-9
    k9, k10 = Fernet.generate_key(), Fernet.generate_key()
    (key_dir / "fernet-9").write_bytes(k9)
    (key_dir / "fernet-10").write_bytes(k10 + b"\n")
    t, d = issue(TokenCodec(load_keys(key_dir)))
    assert TokenCodec(MultiFernet([Fernet(k10)])).decode(t) == d


def test_a_verified_token_expires_on_time_and_forgeries_never_enter(key_dir, monkeypatch):
    """decode() keeps tokens that verified (no crypto on later uses); expiry is still
    checked on every use, and a tampered spelling is never answered from the cache."""
    codec = TokenCodec(load_keys(key_dir))
    token, data = issue(codec, ttl=60)
    assert codec.decode(token) == data and codec.decode(token) == data
    assert token in codec._verified
    for i in (0, len(token) // 2, len(token) - 1):
        with pytest.raises(TokenError):
            codec.decode(flip(token, i))
    assert list(codec._verified) == [token]
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(TokenError, match="expired"):
        codec.decode(token)
    # bounded: the oldest entries make room
    monkeypatch.undo()
    for _ in range(TokenCodec._VERIFIED_MAX + 5):
        codec.decode(issue(codec, ttl=60)[0])
    assert len(codec._verified) == TokenCodec._VERIFIED_MAX and token not in codec._verified
