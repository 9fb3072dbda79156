"""The "code under test" of the demo project: uploads results to object storage."""

from __future__ import annotations

import json
from typing import Any


def publish_swift(conn: Any, container: str, name: str, result: dict[str, Any]) -> str:
    """Store ``result`` as JSON with swiftclient; returns the object's ETag."""
    conn.put_container(container)
    return conn.put_object(container, name, json.dumps(result).encode(), content_type="application/json")


def publish_s3(s3: Any, bucket: str, name: str, result: dict[str, Any]) -> None:
    """Store ``result`` as JSON with boto3."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=name, Body=json.dumps(result).encode(), ContentType="application/json")
