"""The ``trivial_post`` baseline: the least a FastAPI service can do with a POSTed JSON body.

It reads and parses the body and answers a small JSON object, under the same server (uvicorn,
same worker count and options) as Ringfence. Its throughput is what the HTTP stack itself can
serve on this machine: the ceiling any endpoint of ours is compared with.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/{path:path}")
async def post(path: str, request: Request) -> Response:
    body: Any = orjson.loads(await request.body())
    first = body[0] if isinstance(body, list) else body
    answer = {"id": first.get("id"), "processingStatus": "success", "statusCode": 200}
    return Response(orjson.dumps(answer), media_type="application/json")
