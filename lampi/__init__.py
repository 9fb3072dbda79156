"""lampi — object storage speaking Swift (Keystone v3) and S3 over one storage core."""

__version__ = "0.1.0"
