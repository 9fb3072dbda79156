"""Generated passwords must survive being passed on a command line."""

from lampi.core.identity import new_password


def test_generated_passwords_never_look_like_options():
    # token_urlsafe starts with '-' once in 64 draws; 5,000 draws miss that with odds below 1e-34
    drawn = [new_password() for _ in range(5000)]
    assert not [p for p in drawn if p.startswith("-")]
    assert len(set(drawn)) == len(drawn)
    assert all(len(p) == 24 for p in drawn)
