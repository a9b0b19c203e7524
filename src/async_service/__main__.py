"""`python -m async_service` and the `async-service` console script."""

import sys


def main() -> None:
    # The CLI imports Copier, rich and git helpers first (about a second): Ctrl-C then ends
    # the command quietly with 130, as it does once the command runs, not with a traceback.
    try:
        from .cli import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    app()


if __name__ == "__main__":
    main()
