"""What the server's lifespan opens and every call uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._catalogue import Catalogue
    from ._delegation import Delegations
    from ._relay import RelayClient
    from ._store import Store

__all__ = ["State"]


@dataclass
class State:
    """The relay's client, the catalogue, the store and the delegations running in this process."""

    relay: RelayClient
    catalogue: Catalogue
    store: Store
    delegations: Delegations
