"""The hand-written baseline: FastAPI + a raw asyncpg pool, the same endpoints and JSON shapes
as the generated service's `items` slice, on the same table and data.

Written the way a competent engineer would write a small service for speed, not to lose:
async handlers, one pool opened by the lifespan, one statement per request, pydantic
request/response models with the same constraints as the service. It has none of the
service's guarantees (no request ids, no request timeout, no unit of work, no 503 mapping).

Run: BENCH_BASELINE_DSN=postgresql://... uvicorn baseline:create_app --factory
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(max_length=1000)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000_000)]

COLUMNS = "id, name, description, quantity, created_at, updated_at"


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    quantity: Quantity = 0


class ItemRead(BaseModel):
    id: int
    name: str
    description: str | None
    quantity: int
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    items: list[ItemRead]
    next_after: int | None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The same bound as the service's default pool: 20 connections per process.
    pool = await asyncpg.create_pool(
        os.environ["BENCH_BASELINE_DSN"],
        min_size=int(os.environ.get("BENCH_BASELINE_POOL_MIN", "10")),
        max_size=int(os.environ.get("BENCH_BASELINE_POOL_MAX", "20")),
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


def pool_of(request: Request) -> Any:
    return request.app.state.pool


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/items", status_code=status.HTTP_201_CREATED)
    async def create_item(data: ItemCreate, request: Request) -> ItemRead:
        try:
            row = await pool_of(request).fetchrow(
                f"INSERT INTO items (name, description, quantity) VALUES ($1, $2, $3) "
                f"RETURNING {COLUMNS}",
                data.name,
                data.description,
                data.quantity,
            )
        except asyncpg.UniqueViolationError:
            raise HTTPException(status.HTTP_409_CONFLICT, "name taken") from None
        return ItemRead(**dict(row))

    @app.get("/items")
    async def list_items(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: int | None = None,
    ) -> ItemPage:
        if after is None:
            rows = await pool_of(request).fetch(
                f"SELECT {COLUMNS} FROM items ORDER BY id LIMIT $1",
                limit,
            )
        else:
            rows = await pool_of(request).fetch(
                f"SELECT {COLUMNS} FROM items WHERE id > $1 ORDER BY id LIMIT $2",
                after,
                limit,
            )
        items = [ItemRead(**dict(row)) for row in rows]
        return ItemPage(items=items, next_after=items[-1].id if len(items) == limit else None)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, request: Request) -> ItemRead:
        row = await pool_of(request).fetchrow(
            f"SELECT {COLUMNS} FROM items WHERE id = $1",
            item_id,
        )
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
        return ItemRead(**dict(row))

    return app
