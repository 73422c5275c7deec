"""The allocation workbench: the tree of a product's allocations at some dimensions, the pool at
every level above them, and the forms to allocate, unallocate, reallocate and consume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, QueryParams
from starlette.responses import RedirectResponse, Response

from ringfence.domain.allocation import (
    AllocationRequest,
    AllocationRow,
    ConsumeRequest,
    ReallocateRequest,
    pool_neutral_modifiers,
)
from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.errors import NotFound, RingfenceError
from ringfence.domain.ledger import GroupPath
from ringfence.domain.operations import ItemResult, PartitionKey
from ringfence.domain.quantity import ZERO
from ringfence.services.allocation import (
    AllocationQuery,
    AllocationView,
    allocate,
    consume,
    query_allocations,
    reallocate,
    unallocate,
)
from ringfence.services.overview import dimension_values, product_catalog
from ringfence.services.sessions import Session
from ringfence.web.common import (
    CurrentSession,
    configuration_of,
    form,
    new_operation_id,
    render,
    state,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ACTIONS = ("allocate", "unallocate", "reallocate", "consume")
ARROW = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "


@dataclass
class TreeNode:
    """A path in the tree; paths without their own allocation still show their subtree."""

    path: GroupPath
    row: AllocationRow | None
    children: list[TreeNode] = field(default_factory=list)

    @property
    def subtree_allocated(self) -> Decimal:
        if self.row is not None:
            return self.row.subtree_allocated
        return sum((child.subtree_allocated for child in self.children), ZERO)

    @property
    def subtree_consumed(self) -> Decimal:
        if self.row is not None:
            return self.row.subtree_consumed
        return sum((child.subtree_consumed for child in self.children), ZERO)


def build_tree(rows: list[AllocationRow]) -> list[TreeNode]:
    """Nest the query's rows by path, adding the ancestors that hold nothing themselves."""
    nodes: dict[tuple[tuple[str, str], ...], TreeNode] = {}
    roots: list[TreeNode] = []

    def node(items: tuple[tuple[str, str], ...]) -> TreeNode:
        found = nodes.get(items)
        if found is None:
            found = nodes[items] = TreeNode(GroupPath(items), None)
            if len(items) > 1:
                node(items[:-1]).children.append(found)
            else:
                roots.append(found)
        return found

    for row in rows:
        node(row.path.items).row = row
    return roots


@dataclass
class Selection:
    """What the workbench looks at: a product at some dimensions, under a group prefix."""

    organization_id: str = ""
    product_id: str = ""
    dimensions: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, data: QueryParams | FormData, configuration: Configuration) -> Selection:
        def text(name: str) -> str:
            value = data.get(name)
            return value.strip() if isinstance(value, str) else ""

        return cls(
            organization_id=text("organizationId"),
            product_id=text("productId"),
            dimensions={
                name: text(name) for name in configuration.dimension_hierarchy if text(name)
            },
            groups={
                name: text(f"prefix-{name}")
                for name in configuration.allocation_groups
                if text(f"prefix-{name}")
            },
        )

    @property
    def complete(self) -> bool:
        return bool(self.organization_id and self.product_id and self.dimensions)

    def query(self, **extra: str) -> str:
        pairs = {
            "organizationId": self.organization_id,
            "productId": self.product_id,
            **self.dimensions,
            **{f"prefix-{name}": value for name, value in self.groups.items()},
            **extra,
        }
        return urlencode({k: v for k, v in pairs.items() if v})


def _groups(data: FormData, configuration: Configuration, prefix: str) -> dict[str, str]:
    found = {}
    for name in configuration.allocation_groups:
        value = data.get(f"{prefix}-{name}")
        if isinstance(value, str) and value.strip():
            found[name] = value.strip()
    return found


def _consume_label(configuration: Configuration, ref: MeasureRef, modifier: str) -> str:
    if ref in configuration.reservation_mappings:
        return f"Order line reservation ({ref})"
    return f"Sale: {ref} {'+' if modifier == 'Addition' else '-'}"


async def _page(
    request: Request,
    session: Session,
    configuration: Configuration,
    selection: Selection,
    *,
    failed: str | None = None,
    error: RingfenceError | None = None,
    typed: Mapping[str, Any] | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    uow = state(request).uow
    principal = session.principal
    environment_id = principal.environment_id
    view: AllocationView | None = None
    query_error: RingfenceError | None = None
    suggestions: dict[str, list[str]] = {}
    if selection.organization_id and selection.product_id:
        try:
            suggestions = await dimension_values(
                uow,
                principal,
                environment_id,
                PartitionKey(selection.organization_id, selection.product_id),
            )
        except RingfenceError as problem:
            query_error = problem
    if selection.complete and query_error is None:
        try:
            view = await query_allocations(
                uow,
                principal,
                environment_id,
                AllocationQuery(
                    selection.organization_id,
                    selection.product_id,
                    selection.dimensions,
                    selection.groups,
                ),
            )
        except RingfenceError as problem:
            query_error = problem
    products = await product_catalog(uow, principal, environment_id, limit=500)
    group_values: dict[str, set[str]] = {name: set() for name in configuration.allocation_groups}
    for row in view.rows if view else []:
        for name, value in row.path.items:
            group_values[name].add(value)
    consume_choices = [
        (f"{ref}:{modifier}", _consume_label(configuration, ref, modifier))
        for ref, modifier in sorted(
            pool_neutral_modifiers(configuration),
            key=lambda choice: (
                choice[0] in configuration.reservation_mappings,
                choice[1] != "Addition",
            ),
        )
    ]
    return render(
        request,
        "workbench.html",
        {
            "configuration": configuration,
            "selection": selection,
            "view": view,
            "tree": build_tree(view.rows) if view else [],
            "query_error": query_error,
            "suggestions": suggestions,
            "products": products,
            "group_values": {name: sorted(values) for name, values in group_values.items()},
            "consume_choices": consume_choices,
            "failed": failed,
            "error": error,
            "typed": typed or {},
            "operation_ids": {action: new_operation_id(action) for action in ACTIONS},
            "notice": notice or request.query_params.get("notice"),
        },
        session=session,
        status_code=status_code,
    )


@router.get("/workbench")
async def workbench_page(request: Request, session: CurrentSession) -> Response:
    configuration = await configuration_of(request, session)
    return await _page(
        request, session, configuration, Selection.read(request.query_params, configuration)
    )


def _describe(action: str, typed: Mapping[str, Any]) -> str:
    quantity = typed.get("quantity", "")
    target = ARROW.join(value for value in typed.get("groups", {}).values())
    if action == "reallocate":
        source = ARROW.join(value for value in typed.get("source", {}).values())
        return f"Moved {quantity} from {source} to {target}."
    verbs = {"allocate": "Allocated", "unallocate": "Unallocated", "consume": "Consumed"}
    return f"{verbs[action]} {quantity} {'to' if action == 'allocate' else 'of'} {target}."


@router.post("/workbench/{action}")
async def workbench_action(request: Request, action: str, session: CurrentSession) -> Response:
    data = await form(request, session)
    uow = state(request).uow
    principal = session.principal
    environment_id = principal.environment_id
    configuration = await configuration_of(request, session)
    selection = Selection.read(data, configuration)
    operation_id = str(data.get("id") or new_operation_id(action))
    quantity = str(data.get("quantity") or "").strip()
    groups = _groups(data, configuration, "g")
    typed: dict[str, Any] = {
        "quantity": quantity,
        "groups": groups,
        "source": _groups(data, configuration, "s"),
        "consume_as": str(data.get("consume_as") or ""),
        "id": operation_id,
    }
    common: dict[str, Any] = {
        "id": operation_id,
        "organization_id": selection.organization_id,
        "product_id": selection.product_id,
        "dimensions": selection.dimensions,
        "groups": groups,
        "quantity": quantity,
    }
    results: list[ItemResult]
    if action == "allocate":
        results = await allocate(uow, principal, environment_id, [AllocationRequest(**common)])
    elif action == "unallocate":
        results = await unallocate(uow, principal, environment_id, [AllocationRequest(**common)])
    elif action == "reallocate":
        results = await reallocate(
            uow,
            principal,
            environment_id,
            [ReallocateRequest(**common, source_groups=typed["source"])],
        )
    elif action == "consume":
        measure, _, modifier = typed["consume_as"].rpartition(":")
        data_source, _, name = measure.partition(".")
        physical = {data_source: {name: modifier}} if measure else {}
        results = await consume(
            uow,
            principal,
            environment_id,
            [ConsumeRequest(**common, physical_measures=physical)],
        )
    else:
        raise NotFound("not-found", f"there is no workbench action {action!r}")
    [result] = results
    if result.error is not None:
        return await _page(
            request,
            session,
            configuration,
            selection,
            failed=action,
            error=result.error,
            typed=typed,
        )
    notice = _describe(action, typed)
    if "reservationId" in result.body:
        notice += f" Reservation {result.body['reservationId']} holds it."
    return RedirectResponse(f"/workbench?{selection.query(notice=notice)}", status_code=303)
