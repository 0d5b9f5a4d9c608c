"""The spiders of the Scrapy project and their arguments (`GET /spiders`).

Spiders are found by Scrapy's spider loader with the project's settings
(`crawler.settings`, or `SPIDER_MODULES = ["crawler.spiders"]` before that
module exists). A spider class may carry a msgspec Struct class `Args`
describing its arguments; its fields are listed. The listing is cached for a
minute: loading spiders imports their modules.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import anyio.to_thread
import msgspec

from jobapi.errors import ServiceUnavailable
from jobapi.schemas import Spider, SpiderArgument

CACHE_SECONDS = 60.0
log = logging.getLogger("jobapi.spiders")


def _project_settings() -> Any:
    from scrapy.settings import Settings as ScrapySettings

    settings = ScrapySettings()
    if importlib.util.find_spec("crawler.settings") is not None:
        settings.setmodule("crawler.settings", priority="project")
    else:
        settings.set("SPIDER_MODULES", ["crawler.spiders"], priority="project")
    return settings


def _type_name(annotation: Any) -> str:
    """A type as people read it: `list[str]`, `int | None`, `Literal['never', 'auto']`.

    Constraints (`Annotated[..., msgspec.Meta(...)]`) are left out at every level.
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin).replace("typing.", ""))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _help(annotation: Any) -> str | None:
    """The description of a field's type (`Annotated[..., msgspec.Meta(description=...)]`)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        found = [m.description for m in args[1:]
                 if isinstance(m, msgspec.Meta) and m.description]
        return found[-1] if found else _help(args[0])
    if origin in (Union, UnionType):
        return next(filter(None, (_help(a) for a in args)), None)
    return None


def describe(spider_class: Any) -> Spider:
    arguments = []
    args = getattr(spider_class, "Args", None)
    if isinstance(args, type) and issubclass(args, msgspec.Struct):
        for field in msgspec.structs.fields(args):
            default = None if field.required else field.default
            if default is msgspec.NODEFAULT and field.default_factory is not msgspec.NODEFAULT:
                default = field.default_factory()
            arguments.append(SpiderArgument(
                name=field.encode_name, type=_type_name(field.type), required=field.required,
                help=_help(field.type),
                default=msgspec.to_builtins(default) if default is not msgspec.NODEFAULT
                else None,
            ))
    doc = (spider_class.__doc__ or "").strip().split("\n\n", 1)[0].strip() or None
    return Spider(name=spider_class.name, description=doc, arguments=arguments)


def load_spiders() -> list[Spider]:
    from scrapy.spiderloader import get_spider_loader

    loader = get_spider_loader(_project_settings())
    return [describe(loader.load(name)) for name in sorted(loader.list())]


class SpiderCatalog:
    """The project's spiders, loaded in a worker thread and kept for a minute."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._loaded_at = float("-inf")
        self._spiders: list[Spider] = []

    async def spiders(self) -> list[Spider]:
        if time.monotonic() - self._loaded_at > self.ttl:
            try:
                self._spiders = await anyio.to_thread.run_sync(load_spiders)
            except Exception as exc:  # a spider module that fails to import
                log.error("cannot load the spiders: %s: %s", type(exc).__name__, exc)
                raise ServiceUnavailable(
                    "The spiders of the Scrapy project cannot be loaded.",
                    hint="An operator should check the API's log for the failing module.",
                ) from None
            self._loaded_at = time.monotonic()
        return self._spiders

    async def names(self) -> set[str] | None:
        """The spider names, or None when they cannot be loaded (scrapyd then decides)."""
        try:
            return {spider.name for spider in await self.spiders()}
        except ServiceUnavailable:
            return None
