"""The S3 API (path style) over the same buckets as Swift: a bucket is a Swift container."""
