"""The tail of a job's crawler logs, read from the scrapyd nodes that ran its processes.

Each process of a job (`jobs.scrapyd_jobs`) has a log on its node; the tail
of each is read with a suffix Range request, decoded leniently (the log
quotes crawled URLs and server answers: hostile text, shown as text only),
and cut at a line start so no line is shown half. A node that cannot be
reached makes that process's text say so, instead of failing the others.
"""

from __future__ import annotations

from jobapi.errors import ApiError
from jobapi.schemas import Job, JobLog, ProcessLog
from jobapi.scrapyd import ScrapydClient

#: The most of one process's log one call returns.
MAX_TAIL_BYTES = 256 * 1024


def _from_line_start(tail: bytes) -> bytes:
    start = tail.find(b"\n")
    return tail[start + 1:] if start >= 0 else tail


async def job_log(scrapyd: ScrapydClient, job: Job, max_bytes: int) -> JobLog:
    """The last `max_bytes` (at most `MAX_TAIL_BYTES`) of each of the job's process logs."""
    max_bytes = max(1, min(max_bytes, MAX_TAIL_BYTES))
    processes = []
    for ref in job.scrapyd_jobs:
        try:
            answer = await scrapyd.log_tail(scrapyd.node(ref.node), job.spider, ref.jobid,
                                            max_bytes)
        except ApiError as exc:
            processes.append(ProcessLog(node=ref.node, jobid=ref.jobid, truncated=False,
                                        text=f"(the log cannot be read: {exc.message})"))
            continue
        if answer is None:
            processes.append(ProcessLog(node=ref.node, jobid=ref.jobid, text=None,
                                        truncated=False))
            continue
        tail, cut = answer
        if cut:
            tail = _from_line_start(tail)
        processes.append(ProcessLog(node=ref.node, jobid=ref.jobid, truncated=cut,
                                    text=tail.decode("utf-8", errors="replace")))
    return JobLog(processes=processes)
