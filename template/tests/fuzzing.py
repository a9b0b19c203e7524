"""Schemathesis in process: the fuzz tests' shared parts.

Hypothesis runs in a worker thread (it is synchronous); every request it generates runs on
the test's event loop, where the app and its connections live. Seeded and bounded: the same
cases on every run (a failure reproduces); `FUZZ_PROFILE=nightly` runs a longer profile.
"""

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

PROFILE = os.environ.get("FUZZ_PROFILE", "default")
# Cases per test: the whole API, or a few operations under one condition.
EXAMPLES = {"default": 150, "nightly": 5000}[PROFILE]
FEW_EXAMPLES = {"default": 10, "nightly": 1000}[PROFILE]
# For the stateful test: sequences of up to STEPS calls each.
SCENARIOS = {"default": 10, "nightly": 500}[PROFILE]
STEPS = {"default": 6, "nightly": 20}[PROFILE]


def positive_data_accepted(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """positive_data_acceptance, but a body may still break a rule across its fields (e.g. a
    transfer's two ids must differ): JSON Schema cannot state one. A model validator answers
    it with a 422 at `["body"]`, not at a field."""
    if response.status_code == 422 and _only_body_level_errors(response):
        return None
    return positive_data_acceptance(ctx, response, case)


def _only_body_level_errors(response: Response) -> bool:
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list) or not details:
        return False  # not the documented shape: response_schema_conformance reports it
    return all(isinstance(detail, dict) and detail.get("loc") == ["body"] for detail in details)


# Every check that applies to an API without authentication; the coverage phase's own checks
# (missing headers, unsupported methods) do not run here.
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_accepted,
]
# A created item is found until it is deleted, and not found after.
STATEFUL_CHECKS = [*CHECKS, ensure_resource_availability, use_after_free]

Send = Callable[[Case[Any]], httpx.Response]


def hypothesis_settings(**overrides: Any) -> settings:
    return settings(
        derandomize=True,  # seeded: the same cases on every run, so a failure reproduces
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        **overrides,
    )


def load_schema(openapi: dict[str, Any], server_errors: Sequence[int] = ()) -> Any:
    """The schema, with `server_errors` the only 5xx statuses that are not a failure."""
    config = {
        # The links come from the schema alone (no inference from names): the same sequences
        # on every run.
        "phases": {"stateful": {"inference": {"algorithms": []}}},
        "checks": {
            "not_a_server_error": {
                "expected-statuses": ["2xx", "3xx", "4xx", *map(str, server_errors)]
            }
        },
    }
    # An explicit configuration: no schemathesis.toml of the working directory applies.
    return schemathesis.openapi.from_dict(openapi, config=SchemathesisConfig.from_dict(config))


def sender(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> Send:
    """Send a case from the fuzzer's thread through `client`, on the test's loop."""

    def send(case: Case[Any]) -> httpx.Response:
        request = case.as_transport_kwargs(base_url=str(client.base_url))
        headers = dict(request.get("headers") or {})
        if request.get("cookies"):
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in request["cookies"].items())
        call = client.request(
            request["method"],
            request["url"],
            params=request.get("params"),
            headers=headers,
            json=request.get("json"),
            content=request.get("data"),
        )
        return asyncio.run_coroutine_threadsafe(call, loop).result()

    return send


def fuzz_operations(
    openapi: dict[str, Any],
    send: Send,
    *,
    examples: int = EXAMPLES,
    server_errors: Sequence[int] = (),
) -> None:
    """Valid and invalid requests for every operation, one at a time; each response checked."""
    schema = load_schema(openapi, server_errors)
    cases = strategies.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )

    @hypothesis_settings(max_examples=examples, phases=[Phase.explicit, Phase.generate])
    @given(case=cases)
    def check(case: Case[Any]) -> None:
        case.validate_response(send(case), checks=CHECKS)

    check()


def fuzz_links(openapi: dict[str, Any], send: Send, reset: Callable[[], None]) -> None:
    """Sequences of calls that follow the schema's OpenAPI links (e.g. a created item's id into
    get, update and delete), each response checked and the sequence too. `reset` runs before
    every sequence: each starts from the same state, so Hypothesis can replay and shrink it."""
    schema = load_schema(openapi)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            reset()

        def call(self, case: Case[Any], **kwargs: Any) -> Response:
            return Response.from_any(send(case))

        def validate_response(
            self, response: Response, case: Case[Any], *_: Any, **__: Any
        ) -> None:
            case.validate_response(response, checks=STATEFUL_CHECKS, recorder=self.recorder)

    Workflow.run(
        settings=hypothesis_settings(
            max_examples=SCENARIOS, stateful_step_count=STEPS, phases=[Phase.generate]
        )
    )


@contextmanager
def fuzzer_thread_tolerated(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While the fuzzer generates cases in its thread, the loop's steps also wait for the GIL:
    the event-loop guard (tests/guards.py) would time the fuzzer, not the app. Loop blocking
    is the guard's job in every other test."""
    threshold = loop.slow_callback_duration
    loop.slow_callback_duration = max(threshold, 1.0)
    try:
        yield
    finally:
        loop.slow_callback_duration = threshold
