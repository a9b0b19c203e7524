"""OpenAPI links: which later calls take a value from a response (e.g. a created item's id
into its get, update and delete). Clients read them to chain calls; the services' fuzz test
follows them, so get, update and delete also run on resources that exist.

Values are runtime expressions: `$response.body#/id`, `$request.path.item_id`, ...
"""

from typing import Any

Link = dict[str, Any]


def link(
    operation: str,
    *,
    parameters: dict[str, str] | None = None,
    body: dict[str, str] | None = None,
) -> Link:
    """A link to `operation`, written as in the docs: "PATCH /items/{item_id}". `body` fields
    are merged into the request body the caller sends."""
    method, path = operation.split(" ")
    pointer = path.replace("~", "~0").replace("/", "~1")  # a JSON pointer into `paths`
    definition: Link = {"operationRef": f"#/paths/{pointer}/{method.lower()}"}
    if parameters:
        definition["parameters"] = parameters
    if body:
        definition["requestBody"] = body
    return definition
