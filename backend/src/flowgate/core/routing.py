"""The route class of every FastAPI router: a body too deep to parse is a 422, not a 400.

The standard library's ``json`` parser recurses once per nesting level, so a hostile body
nested ~1000 deep raises RecursionError, which FastAPI reports as a vague 400 "There was an
error parsing the body" — or parses it, depending on how deep the stack already is. Here a
body that hits the limit is parsed again on a fresh thread (so the outcome never depends on
the route), one that is still too deep is a JSON error (422), and whatever parses is refused
by the storable-value check (``core/schemas.py``) with its path when nested deeper than 32.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute


class _JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = (await self.body()).decode("utf-8", "surrogatepass")
            try:
                self._json = json.loads(body)
            except RecursionError:
                # The request's own call stack used up part of the limit: parse again on a
                # fresh thread's stack, so how deep a body may be does not depend on the path.
                try:
                    self._json = await asyncio.to_thread(json.loads, body)
                except RecursionError:
                    raise json.JSONDecodeError("nested too deeply", body, 0) from None
        return self._json


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_JSONRequest(request.scope, request.receive))

        return route


def api_router(**options: Any) -> APIRouter:
    """An ``APIRouter`` whose routes answer a body too deep to parse with 422."""
    return APIRouter(route_class=JSONRoute, **options)
