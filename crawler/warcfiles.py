"""WARC/1.1 files of one crawler process: records gzipped one by one, rotated at a size.

`WarcFiles` writes into ``<dir>/<job>-<worker>-<sequence>.warc.gz.open``: a
``warcinfo`` record first, then the records it is given, each its own gzip
member and flushed to the kernel, so a process killed at any point leaves a
file readable up to its last complete record. Past `max_bytes` the file is
closed (renamed without ``.open``: a reader never takes a half file for a
whole one) and the next sequence number opened. `close_out` makes a dead
worker's ``.open`` file whole: it keeps the records warcio reads back, cuts
the rest and renames it.

Every file opened, rotated or closed out is reported to `on_file` (name,
bytes, records, closed), which the WARC middleware turns into a row of
``warc_files`` (migrations/0017_warc_files.sql). The class is not thread-safe:
the middleware calls it from one writer thread only.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

OPEN_SUFFIX = ".open"
SUFFIX = ".warc.gz"
#: What a WARC file name may be, everywhere it is read from outside (the API checks it).
NAME = re.compile(r"^[0-9a-f-]{36}-[A-Za-z0-9]{1,64}-[0-9]{5}\.warc\.gz$")
OnFile = Callable[[str, int, int, bool], None]


def file_name(job_id: str, worker: str, sequence: int) -> str:
    return f"{job_id}-{worker}-{sequence:05d}{SUFFIX}"


def worker_token(worker: str) -> str:
    """A worker id reduced to the letters and digits a file name may hold."""
    return re.sub(r"[^A-Za-z0-9]", "", worker)[:64] or "worker"


class WarcFiles:
    """The rotating WARC output of one worker of one job."""

    def __init__(self, directory: Path, job_id: str, worker: str, *, max_bytes: int,
                 on_file: OnFile, info: dict[str, str]) -> None:
        self.directory = directory
        self.job_id = job_id
        self.worker = worker_token(worker)
        self.max_bytes = max_bytes
        self.on_file = on_file
        self.info = info
        self.sequence = 0
        self._fh: IO[bytes] | None = None
        self._writer: WARCWriter | None = None
        self._name = ""
        self._records = 0
        self._warcinfo_id = ""
        # Builds records only (no output of its own): one serves every record.
        self._builder = WARCWriter(None, gzip=True, warc_version="WARC/1.1")

    def write(self, records: list[Any]) -> None:
        """Write records made by `record_writer()` (warcio) into the current file."""
        if self._writer is None:
            self._open()
        assert self._writer is not None and self._fh is not None
        for record in records:
            record.rec_headers.replace_header("WARC-Warcinfo-ID", self._warcinfo_id)
            self._writer.write_record(record)
        self._records += len(records)
        self._fh.flush()
        if self._fh.tell() >= self.max_bytes:
            self.close()

    def record_writer(self) -> WARCWriter:
        """A writer to build records with (`create_warc_record`); `write` writes them."""
        return self._builder

    def close(self) -> None:
        if self._fh is None:
            return
        size = self._fh.tell()
        self._fh.close()
        path = self.directory / self._name
        os.replace(path.with_name(self._name + OPEN_SUFFIX), path)
        self.on_file(self._name, size, self._records, True)
        self._fh = self._writer = None

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sequence += 1
        self._name = file_name(self.job_id, self.worker, self.sequence)
        self._fh = open(self.directory / (self._name + OPEN_SUFFIX), "xb")  # noqa: SIM115
        # Held while this process lives: `close_out` leaves a locked file alone.
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._writer = WARCWriter(self._fh, gzip=True, warc_version="WARC/1.1")
        info = self._writer.create_warcinfo_record(self._name, self.info)
        self._warcinfo_id = info.rec_headers.get_header("WARC-Record-ID")
        self._writer.write_record(info)
        self._records = 1
        self._fh.flush()
        self.on_file(self._name, self._fh.tell(), self._records, False)


def close_out(path: Path) -> tuple[str, int, int] | None:
    """Make a dead worker's ``.open`` file whole: keep its complete records, rename it.

    Returns the closed file's name, bytes and records; None if a live process
    still writes it (it holds the file's lock).
    """
    with open(path, "r+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        end = records = 0
        try:
            iterator = ArchiveIterator(fh)
            for record in iterator:
                record.content_stream().read()
                iterator.read_to_end(record)
                end = iterator.get_record_offset() + iterator.get_record_length()
                records += 1
        except Exception:  # noqa: BLE001 - a cut record ends what is kept, whatever warcio says
            pass
        fh.truncate(end)
        closed = path.with_name(path.name.removesuffix(OPEN_SUFFIX))
        os.replace(path, closed)
    return closed.name, end, records
