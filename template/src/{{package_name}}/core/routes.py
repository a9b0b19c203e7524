"""How the app holds the service's routers: their routes on the app itself, matched in order."""

import inspect
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

# add_api_route's parameters: a route keeps each one under the same name.
_ROUTE_SETTINGS = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in ("self", "route_class_override")
)
_DEFAULT_LIFESPAN = type(APIRouter().lifespan_context)


def has_lifespan(router: APIRouter) -> bool:
    return bool(router.on_startup or router.on_shutdown) or not isinstance(
        router.lifespan_context, _DEFAULT_LIFESPAN
    )


def mount_routers(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Add each router's routes to the app, as `include_router` did up to FastAPI 0.136.

    Since 0.137 `include_router` keeps the router as a node that every request walks twice,
    to match it and again to handle it. Each route already carries its router's prefix,
    tags, responses and dependencies; added again on the app, it also follows
    `app.dependency_overrides`. A router holding more than path operations (a nested
    router, a websocket, a mount) or a lifespan of its own is included as FastAPI does.
    """
    for router in routers:
        routes = [route for route in router.routes if isinstance(route, APIRoute)]
        if len(routes) < len(router.routes) or has_lifespan(router):
            app.include_router(router)
            continue
        for route in routes:
            settings = {name: getattr(route, name) for name in _ROUTE_SETTINGS}
            app.router.add_api_route(**settings, route_class_override=type(route))


def docs_routes_last(app: FastAPI) -> None:
    """Match FastAPI's own routes (the OpenAPI schema, the docs pages) after the service's.

    FastAPI adds them first, so every request was matched against their four paths before
    reaching the service's routes; the docs' few readers can wait instead. A service route
    on one of those paths now wins over FastAPI's page.
    """
    paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes.sort(
        key=lambda route: not isinstance(route, APIRoute) and getattr(route, "path", None) in paths
    )
