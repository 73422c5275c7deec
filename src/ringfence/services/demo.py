"""Use case of loading the demo environment: a bike and apparel retailer.

A few hundred products across three sites and five locations, in colours and sizes, with ERP
(``fno``) counts and store (``pos``) movements; for some products, allocations to web and store
channels, sales against them and open order lines. Loaded through the same services as the API
(so it is journaled like any other data), deterministically from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ringfence.domain.access import Principal, Role
from ringfence.domain.allocation import AllocationRequest, ConsumeRequest
from ringfence.domain.onhand import OnHandChangeRequest, SetOnHandRequest
from ringfence.domain.operations import Bucket, ItemResult
from ringfence.domain.quantity import ZERO
from ringfence.domain.reservations import ReserveRequest
from ringfence.services.allocation import allocate, consume
from ringfence.services.configuration import ensure_environment
from ringfence.services.onhand import post_onhand_changes, set_onhand
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.services.reservations import reserve
from ringfence.services.tokens import IssuedToken, create_token

__all__ = ["DemoSummary", "load_demo"]

ORGANIZATION = "usmf"
SITES: dict[str, tuple[str, ...]] = {"1": ("11", "12"), "2": ("21",), "3": ("31", "32")}
FAMILIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Bike", ("red", "black", "blue", "white"), ("S", "M", "L")),
    ("Helmet", ("black", "white", "yellow"), ("S", "M", "L")),
    ("Jersey", ("red", "blue", "green", "black"), ("XS", "S", "M", "L", "XL")),
    ("Shoe", ("black", "white"), ("40", "41", "42", "43", "44")),
    ("Glove", ("black", "grey"), ("S", "M", "L")),
    ("Bottle", ("clear", "black"), ("500ml", "750ml")),
)
BATCH = 512

Progress = Callable[[int, int], None]
"""Called with (items done, items in all) as loading goes on."""


@dataclass(frozen=True, slots=True)
class DemoSummary:
    environment_id: str
    products: int
    rows: int
    token: IssuedToken


def _plan(products: int, seed: int) -> tuple[list[SetOnHandRequest], list[OnHandChangeRequest]]:
    rng = random.Random(seed)
    counts: list[SetOnHandRequest] = []
    movements: list[OnHandChangeRequest] = []
    counted_at = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    for number in range(products):
        family, colours, sizes = FAMILIES[number % len(FAMILIES)]
        product = f"{family}-{number // len(FAMILIES) + 1:03d}"
        product_colours = rng.sample(colours, k=rng.randint(1, len(colours)))
        product_sizes = sizes[: rng.randint(1, len(sizes))]
        for site, locations in SITES.items():
            for location in locations:
                if rng.random() < 0.3:
                    continue
                for colour in product_colours:
                    for size in product_sizes:
                        dimensions = {
                            "siteId": site,
                            "locationId": location,
                            "colorId": colour,
                            "sizeId": size,
                        }
                        key = f"{product}-{site}-{location}-{colour}-{size}"
                        counts.append(
                            SetOnHandRequest(
                                id=f"demo-count-{key}",
                                organization_id=ORGANIZATION,
                                product_id=product,
                                dimensions=dimensions,
                                quantities={
                                    "fno": {
                                        "availphysical": Decimal(rng.randint(0, 60)),
                                        "ordered": Decimal(rng.choice((0, 0, 5, 10, 20))),
                                        "onorder": Decimal(rng.choice((0, 0, 0, 2, 4))),
                                    }
                                },
                                modified_at=counted_at + timedelta(minutes=number),
                            )
                        )
                        movements.append(
                            OnHandChangeRequest(
                                id=f"demo-pos-{key}",
                                organization_id=ORGANIZATION,
                                product_id=product,
                                dimensions=dimensions,
                                quantities={
                                    "pos": {
                                        "inbound": Decimal(rng.randint(0, 12)),
                                        "outbound": Decimal(rng.randint(0, 8)),
                                    }
                                },
                            )
                        )
    return counts, movements


def _check(results: Sequence[ItemResult]) -> None:
    refused = [r for r in results if r.bucket not in (Bucket.SUCCESS, Bucket.PARTIAL_SUCCESS)]
    if refused:
        first = refused[0]
        raise RuntimeError(f"demo item {first.id} was refused: {first.error}")


async def load_demo(
    uow: UnitOfWorkFactory,
    *,
    environment_id: str = "demo",
    products: int = 300,
    seed: int = 7,
    progress: Progress | None = None,
) -> DemoSummary:
    """Replace ``environment_id`` with fresh demo data; returns an admin token for it."""
    async with uow() as work:
        await work.environments.delete(environment_id)
        await work.commit()
    await ensure_environment(uow, environment_id, actor="demo")
    loader = Principal(environment_id, Role.ADMIN, "demo loader")
    counts, movements = _plan(products, seed)
    total = len(counts) + len(movements)
    done = 0
    for start in range(0, len(counts), BATCH):
        batch = counts[start : start + BATCH]
        _check(await set_onhand(uow, loader, environment_id, "fno", batch))
        done += len(batch)
        if progress is not None:
            progress(done, total)
    for start in range(0, len(movements), BATCH):
        moves = movements[start : start + BATCH]
        _check(await post_onhand_changes(uow, loader, environment_id, moves))
        done += len(moves)
        if progress is not None:
            progress(done, total)
    await _plan_allocations(uow, loader, environment_id, counts, movements)
    token = await create_token(
        uow, Principal.operator(environment_id), Role.ADMIN, name="demo-admin"
    )
    return DemoSummary(environment_id, products, len(counts), token)


PLANNED_PRODUCTS = 40
PATHS = (
    ({"channel": "Web", "customerGroup": "VIP", "region": "US"}, Decimal("0.4"), Decimal("0.9")),
    ({"channel": "Web", "customerGroup": "VIP", "region": "EU"}, Decimal("0.15"), Decimal("0.3")),
    ({"channel": "Web", "customerGroup": "Normal"}, Decimal("0.15"), Decimal("0.5")),
    ({"channel": "Store"}, Decimal("0.1"), Decimal("0")),
)
"""Demo allocation paths: the share of the pool each gets, and the share of that it has sold."""


async def _plan_allocations(
    uow: UnitOfWorkFactory,
    planner: Principal,
    environment_id: str,
    counts: Sequence[SetOnHandRequest],
    movements: Sequence[OnHandChangeRequest],
) -> None:
    """Allocate part of store 11's pool of some products to channels, sell some of it, and
    hold a few order lines, so every page of the workbench has something to show."""
    store = {"siteId": "1", "locationId": "11"}
    pools: dict[str, Decimal] = {}
    for request in (*counts, *movements):
        if {k: request.dimensions[k] for k in store} != store:
            continue
        for values in request.quantities.values():
            for measure, quantity in values.items():
                sign = -1 if measure == "outbound" else 1
                if measure in ("availphysical", "inbound", "outbound"):
                    assert isinstance(quantity, Decimal)
                    pools[request.product_id] = (
                        pools.get(request.product_id, ZERO) + sign * quantity
                    )
    planned = [product for product, pool in sorted(pools.items()) if pool >= 20]
    for product in planned[:PLANNED_PRODUCTS]:
        pool = pools[product]
        for number, (groups, share, sold) in enumerate(PATHS):
            quantity = (pool * share).to_integral_value(rounding=ROUND_FLOOR)
            if quantity <= 0:
                continue
            base: dict[str, Any] = {
                "organization_id": ORGANIZATION,
                "product_id": product,
                "dimensions": store,
                "groups": groups,
            }
            _check(
                await allocate(
                    uow,
                    planner,
                    environment_id,
                    [
                        AllocationRequest(
                            id=f"demo-plan-{product}-{number}", quantity=quantity, **base
                        )
                    ],
                )
            )
            consumed = (quantity * sold).to_integral_value(rounding=ROUND_FLOOR)
            if consumed > 0:
                _check(
                    await consume(
                        uow,
                        planner,
                        environment_id,
                        [
                            ConsumeRequest(
                                id=f"demo-sale-{product}-{number}",
                                quantity=consumed,
                                physical_measures={"pos": {"outbound": "Addition"}},
                                **base,
                            )
                        ],
                    )
                )
        _check(
            await reserve(
                uow,
                planner,
                environment_id,
                [
                    ReserveRequest(
                        id=f"demo-order-{product}",
                        organization_id=ORGANIZATION,
                        product_id=product,
                        dimensions=store,
                        quantity=Decimal(1),
                    )
                ],
            )
        )
