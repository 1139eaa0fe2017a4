"""A client for the Tally ledger's line protocol (docs/PROTOCOL.md).

``AsyncClient`` (asyncio, pipelined) and ``Client`` (blocking). Amounts are ``int`` minor
units both ways; errors are typed by their stable code (``tally_client.errors``).
"""

from .client import AsyncClient, Client, split_address
from .errors import *  # noqa: F401,F403  (one class per code, generated)
from .errors import (
    ERROR_CODES,
    OutcomeUnknownError,
    ProtocolError,
    RequestTimeoutError,
    RequestTooLargeError,
    TallyClientError,
    TallyConnectionError,
    TallyError,
    error_class,
)
from .merkle import (
    Checkpoint,
    leaf_hash,
    node_hash,
    parse_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from .protocol import VERBS, Kind
from .results import Balance, Created, Head, Receipt
from .verbs import credit, debit

__version__ = "1.0.0"
