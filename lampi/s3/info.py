"""The S3 API's section of ``GET /info``, as Swift's s3api middleware registers it
(``swift/common/middleware/s3api/s3api.py``): clients and Swift's own s3api functional
tests read it to know the S3 API is there and its limits."""

from __future__ import annotations

from lampi.core import multipart as mp
from lampi.s3.listing import MAX_KEYS
from lampi.s3.multipart import MAX_LIST
from lampi.s3.object import MAX_DELETE_KEYS


def info() -> dict[str, object]:
    return {"s3api": {
        "max_bucket_listing": MAX_KEYS,
        "max_parts_listing": MAX_LIST,
        "max_upload_part_num": mp.MAX_PARTS,
        "max_multi_delete_objects": MAX_DELETE_KEYS,
        "allow_multipart_uploads": True,
        "min_segment_size": mp.MIN_PART_SIZE,
        "s3_acl": True,  # S3 ACLs of their own (lampi/s3/acl.py), as s3api's s3_acl = true
    }}
