"""The API's routes read from the app's own route table, so that a new route cannot be missed.

`operations(app)` lists every (method, path template, operation id) the app
serves, without the automatic OPTIONS handlers; `fill(path, ...)` puts values
into a template's path parameters.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the template, e.g. /api/v1/jobs/{job_id:uuid}
    operation_id: str | None
    public: bool  # excluded from authentication

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: Any) -> list[Operation]:
    """Every operation of the app's route table (OPTIONS handlers left out)."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in sorted(handler.http_methods):
                if method == "OPTIONS":
                    continue
                public = bool(handler.opt.get("exclude_from_auth")) or \
                    route.path.startswith("/schema")
                found.append(Operation(method, route.path,
                                       getattr(handler, "operation_id", None), public))
    return sorted(set(found), key=lambda op: (op.path, op.method))


def fill(path: str, values: Mapping[str, object]) -> str:
    """The path with each `{name:type}` replaced by `values[name]` (a webhook_id not given:
    a random one; an other_id not given: the build_id, a diff of a build with itself)."""
    values = {"webhook_id": uuid.uuid4(), **values}
    if "build_id" in values:
        values = {"other_id": values["build_id"], **values}
    if "job_id" in values:  # a WARC file name of the job (tests/security/test_bola.py has one)
        values = {"name": f"{values['job_id']}-w-00001.warc.gz", **values}
    return _PARAM.sub(lambda m: str(values[m.group(1)]), path)
