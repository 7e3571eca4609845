"""Routes under /v1/models: the catalog of served models."""

from __future__ import annotations

from aiohttp import web

from inferhook.catalog import CatalogEntry
from ingest.errors import NotFound
from ingest.openapi import operation
from ingest.state import CATALOG
from schemas.api import ModelInfo, ModelList

routes = web.RouteTableDef()


def model_info(entry: CatalogEntry) -> ModelInfo:
    """The API view of a catalog entry."""
    m = entry.manifest
    return ModelInfo(name=m.name, version=m.version, description=m.description,
                     input_schema=m.input_schema, output_schema=m.output_schema,
                     example_input=m.example_input)


@routes.get("/v1/models")
@operation("List the served models", responses={200: ModelList}, tags=("models",))
async def list_models(request: web.Request) -> web.Response:
    """Every served model with its schemas and example input."""
    body = ModelList(results=[model_info(e) for e in request.app[CATALOG].values()])
    return web.Response(text=body.model_dump_json(), content_type="application/json")


@routes.get("/v1/models/{owner}/{name}")
@operation("Get a model with its input and output schemas", responses={200: ModelInfo},
           tags=("models",))
async def get_model(request: web.Request) -> web.Response:
    """One model."""
    name = f"{request.match_info['owner']}/{request.match_info['name']}"
    entry = request.app[CATALOG].get(name)
    if entry is None:
        raise NotFound(f"model {name!r} does not exist")
    return web.Response(text=model_info(entry).model_dump_json(), content_type="application/json")
