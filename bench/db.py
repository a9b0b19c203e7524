"""Bench database chores, run with the rendered project's interpreter (it has asyncpg).

python db.py create ADMIN_DSN NAME     drop NAME if it exists, then create it
python db.py seed DSN N                insert N items (ids 1..N) and ANALYZE
python db.py drop ADMIN_DSN NAME       drop NAME, disconnecting whoever is still on it
"""

import asyncio
import sys

import asyncpg


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def main(command: str, dsn: str, arg: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        if command in ("create", "drop"):
            await connection.execute(f"DROP DATABASE IF EXISTS {quoted(arg)} WITH (FORCE)")
            if command == "create":
                await connection.execute(f"CREATE DATABASE {quoted(arg)}")
        elif command == "seed":
            await connection.execute(
                "INSERT INTO items (name, description, quantity) "
                "SELECT 'item-' || g, 'seeded item number ' || g, g % 100 "
                "FROM generate_series(1, $1::int) AS g",
                int(arg),
            )
            await connection.execute("ANALYZE items")
        else:
            raise SystemExit(f"unknown command {command!r}: use create, seed or drop")
    finally:
        await connection.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:4]))
