"""The session floor: the baseline's endpoints written the textbook SQLAlchemy 2 way, with the
one rule the generated service keeps that the baseline does not: one AsyncSession per
request, from a yield dependency, committed before the response and rolled back on error.

It has nothing else of the service (no request ids, timeouts, gate, logging, background
task, error mapping), so no service that keeps that rule can do the same work for less:
`--floor` runs it beside the two others to show how close the service is to that limit,
and what the rule itself costs against the raw asyncpg baseline.

Run: BENCH_BASELINE_DSN=postgresql://... uvicorn floor:create_app --factory
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from baseline import COLUMNS, ItemCreate, ItemPage, ItemRead
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

INSERT = text(
    f"INSERT INTO items (name, description, quantity) VALUES (:name, :description, :quantity) "
    f"RETURNING {COLUMNS}"
)
GET = text(f"SELECT {COLUMNS} FROM items WHERE id = :id")
FIRST_PAGE = text(f"SELECT {COLUMNS} FROM items ORDER BY id LIMIT :limit")
NEXT_PAGE = text(f"SELECT {COLUMNS} FROM items WHERE id > :after ORDER BY id LIMIT :limit")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = os.environ["BENCH_BASELINE_DSN"].replace("postgresql://", "postgresql+asyncpg://", 1)
    # The same bound as the baseline's pool and the service's default: 20 connections.
    engine = create_async_engine(url, pool_size=10, max_overflow=10)
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    try:
        yield
    finally:
        await engine.dispose()


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": the commit runs before the response is sent, as in the service.
SessionDep = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/items", status_code=status.HTTP_201_CREATED)
    async def create_item(data: ItemCreate, session: SessionDep) -> ItemRead:
        try:
            row = (await session.execute(INSERT, data.model_dump())).one()
        except exc.IntegrityError:
            raise HTTPException(status.HTTP_409_CONFLICT, "name taken") from None
        return ItemRead.model_validate(row, from_attributes=True)

    @app.get("/items")
    async def list_items(
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: int | None = None,
    ) -> ItemPage:
        if after is None:
            result = await session.execute(FIRST_PAGE, {"limit": limit})
        else:
            result = await session.execute(NEXT_PAGE, {"after": after, "limit": limit})
        items = [ItemRead.model_validate(row, from_attributes=True) for row in result]
        return ItemPage(items=items, next_after=items[-1].id if len(items) == limit else None)

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, session: SessionDep) -> ItemRead:
        row = (await session.execute(GET, {"id": item_id})).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
        return ItemRead.model_validate(row, from_attributes=True)

    return app
