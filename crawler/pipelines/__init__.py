"""Item pipelines: validation and batched, idempotent storage in PostgreSQL.

`StoragePipeline` (`crawler.pipelines.storage`) is the one to switch on; rows
and the store are in `crawler.pipelines.rows` and `crawler.pipelines.store`.
"""

from crawler.pipelines.errors import StorageError, StorageUnavailable
from crawler.pipelines.storage import StoragePipeline

__all__ = ["StorageError", "StoragePipeline", "StorageUnavailable"]
