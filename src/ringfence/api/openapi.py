"""OpenAPI for routes that read their JSON body themselves (to keep quantities exact).

Such routes declare their body with :func:`json_body`; :func:`install_openapi` adds the models'
schemas to the document's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

__all__ = ["install_openapi", "json_body"]

_REF = "#/components/schemas/{model}"
_models: dict[str, type[BaseModel]] = {}


def json_body(
    model: type[BaseModel], *, array: bool = False, max_items: int | None = None
) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of ``model`` (or an array of them)."""
    _models[model.__name__] = model
    schema: dict[str, Any] = {"$ref": _REF.format(model=model.__name__)}
    if array:
        schema = {"type": "array", "items": schema, "minItems": 1}
        if max_items is not None:
            schema["maxItems"] = max_items
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _models.items():
            schema = model.model_json_schema(ref_template=_REF, by_alias=True)
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
