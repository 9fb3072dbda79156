"""Swift's limits, in one place; published by ``GET /info``.

Values are OpenStack Swift's defaults (swift/common/constraints.py, swift.conf-sample).
"""

from __future__ import annotations

MAX_FILE_SIZE = 5 * 1024 * 1024 * 1024  # 5 GiB, overridable by settings.max_object_size
MAX_META_NAME_LENGTH = 128
MAX_META_VALUE_LENGTH = 256
MAX_META_COUNT = 90
MAX_META_OVERALL_SIZE = 4096
MAX_HEADER_SIZE = 8192
MAX_OBJECT_NAME_LENGTH = 1024
MAX_CONTAINER_NAME_LENGTH = 256
MAX_ACCOUNT_NAME_LENGTH = 256
CONTAINER_LISTING_LIMIT = 10000
ACCOUNT_LISTING_LIMIT = 10000
EXTRA_HEADER_COUNT = 0
# swob.Range's guard against egregious range requests (RFC 7233 section 6.1): 416
MAX_RANGES = 50
MAX_RANGE_OVERLAPS = 2
MAX_NONASCENDING_RANGES = 8


# path segments every HTTP client and proxy resolves away (RFC 3986 section 5.2.4): a
# container of that name could be made with a hand-written request but never reached again
DOT_SEGMENTS = (".", "..")


def new_container_problem(name: str) -> str | None:
    """Why ``name`` cannot be a new container's (None: it can): what a container PUT and
    extract-archive refuse, beyond the length and UTF-8 checks every request gets."""
    if name in DOT_SEGMENTS:
        return f"Container name cannot be {name!r}"
    return None


def swift_info(max_file_size: int, policies: list[tuple[str, bool]] | None = None) -> dict[str, object]:
    """``policies``: (name, is the default) of every storage policy, as Swift's
    ``POLICIES.get_policy_info()`` lists them (``default`` only on the default one)."""
    return {
        "max_file_size": max_file_size,
        "max_meta_name_length": MAX_META_NAME_LENGTH,
        "max_meta_value_length": MAX_META_VALUE_LENGTH,
        "max_meta_count": MAX_META_COUNT,
        "max_meta_overall_size": MAX_META_OVERALL_SIZE,
        "max_header_size": MAX_HEADER_SIZE,
        "max_object_name_length": MAX_OBJECT_NAME_LENGTH,
        "max_container_name_length": MAX_CONTAINER_NAME_LENGTH,
        "max_account_name_length": MAX_ACCOUNT_NAME_LENGTH,
        "container_listing_limit": CONTAINER_LISTING_LIMIT,
        "account_listing_limit": ACCOUNT_LISTING_LIMIT,
        "extra_header_count": EXTRA_HEADER_COUNT,
        "valid_api_versions": ["v1", "v1.0"],
        "strict_cors_mode": True,
        "policies": [{"name": n, "aliases": n, **({"default": True} if d else {})}
                     for n, d in (policies or [("default-placement", True)])],
        "allow_account_management": False,
        "account_autocreate": False,
    }
