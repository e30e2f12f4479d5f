"""Result types: the server's own response models (`paywire.schemas`, `paywire.billing.schemas`),
lists that page, and a generic object (`PaywireObject`) the billing models also are."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from paywire.billing import schemas as billing_schemas
from paywire.schemas import ListResponse

M = TypeVar("M", bound=BaseModel)


class PaywireObject(BaseModel):
    """Any API object: attribute access over its JSON (`obj.status`), `obj["status"]` too."""

    model_config = ConfigDict(extra="allow")

    if TYPE_CHECKING:  # pydantic serves extra fields as attributes; tell the type checker so

        def __getattr__(self, name: str) -> Any: ...

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


class DeletedObject(PaywireObject):
    id: str
    object: str
    deleted: bool


# --- billing results: the server's response model (`paywire.billing.schemas`), made a PaywireObject
# too, so that `obj["status"]` and `to_dict()` keep working. The server models allow extra fields:
# what the server adds later is kept (`model_extra`) and reads as an attribute, never an error.


class CheckoutSession(billing_schemas.CheckoutSession, PaywireObject):
    pass


class Subscription(billing_schemas.Subscription, PaywireObject):
    pass


class Invoice(billing_schemas.Invoice, PaywireObject):
    pass


class PaymentIntent(billing_schemas.PaymentIntent, PaywireObject):
    pass


class Refund(billing_schemas.Refund, PaywireObject):
    pass


class TestClock(billing_schemas.TestClock, PaywireObject):
    __test__ = False  # not a pytest class


class PaymentLink(billing_schemas.PaymentLink, PaywireObject):
    pass


class PortalSession(billing_schemas.PortalSession, PaywireObject):
    pass


# Each billing object's model, by its `object` type.
MODELS: dict[str, type[PaywireObject]] = {
    "checkout_session": CheckoutSession,
    "subscription": Subscription,
    "invoice": Invoice,
    "payment_intent": PaymentIntent,
    "refund": Refund,
    "test_clock": TestClock,
    "payment_link": PaymentLink,
    "billing_portal.session": PortalSession,
}


class ListResult(ListResponse[M], Generic[M]):
    """One page: `.list`, `.count`, `.paging`; `auto_paging_iter()` walks this page and the next."""

    _fetch: Callable[[int], ListResult[M]] | None = PrivateAttr(default=None)

    @property
    def has_more(self) -> bool:
        return self.paging.page * self.paging.size < self.count

    def next_page(self) -> ListResult[M] | None:
        if not self.has_more or self._fetch is None:
            return None
        return self._fetch(self.paging.page + 1)

    def auto_paging_iter(self) -> Iterator[M]:
        """Every item from this page on. Pages are newest first, so an object created meanwhile
        pushes older ones to the next page: items already seen are skipped, not repeated."""
        seen: set[str] = set()
        page: ListResult[M] | None = self
        while page is not None:
            yield from _unseen(page.list, seen)
            page = page.next_page()


class AsyncListResult(ListResponse[M], Generic[M]):
    """The async client's page: `await next_page()`, `async for x in page.auto_paging_iter()`."""

    _fetch: Callable[[int], Awaitable[AsyncListResult[M]]] | None = PrivateAttr(default=None)

    @property
    def has_more(self) -> bool:
        return self.paging.page * self.paging.size < self.count

    async def next_page(self) -> AsyncListResult[M] | None:
        if not self.has_more or self._fetch is None:
            return None
        return await self._fetch(self.paging.page + 1)

    async def auto_paging_iter(self) -> AsyncIterator[M]:
        seen: set[str] = set()
        page: AsyncListResult[M] | None = self
        while page is not None:
            for item in _unseen(page.list, seen):
                yield item
            page = await page.next_page()


def list_of(model: type[M]) -> type[ListResult[M]]:
    """`ListResult[model]`, parametrized at run time so that pydantic checks every item."""
    return ListResult[model]  # type: ignore[valid-type]


def async_list_of(model: type[M]) -> type[AsyncListResult[M]]:
    return AsyncListResult[model]  # type: ignore[valid-type]


def _unseen(items: list[M], seen: set[str]) -> Iterator[M]:
    for item in items:
        key = getattr(item, "id", None)
        if isinstance(key, str):
            if key in seen:
                continue
            seen.add(key)
        yield item
