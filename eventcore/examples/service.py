"""The bank as a web service: commands as POST endpoints, a read model as GET endpoints.

Run it with ``make serve`` (or ``python -m eventcore.examples.service``): SQLite in a file
with no setup, or PostgreSQL when ``EVENTCORE_POSTGRES_URL`` is set; it listens on
127.0.0.1 and documents itself at ``/docs`` (OpenAPI). The notebook
``16_from_notebook_to_service`` drives the same app in-process with ``httpx``.

>>> import asyncio, httpx
>>> from eventcore import InMemoryEventStore, SeededIds, TickingClock
>>> app = create_app(InMemoryEventStore(clock=TickingClock(), ids=SeededIds(seed=7)))
>>> async def main() -> list[object]:
...     async with app.router.lifespan_context(app):
...         transport = httpx.ASGITransport(app=app)
...         async with httpx.AsyncClient(transport=transport, base_url="http://bank") as bank:
...             await bank.post("/accounts", json={"account": "ada", "owner": "Ada",
...                                                "initial_deposit": 100})
...             r = await bank.post("/accounts", json={"account": "bob", "owner": "Bob"})
...             r = await bank.post("/transfers",
...                                 json={"source": "ada", "target": "bob", "amount": 30})
...             wait = {"EventCore-Min-Position": r.headers["EventCore-Position"]}
...             read = await bank.get("/accounts/bob", headers=wait)
...             return [r.status_code, r.json(), read.json()]
>>> for line in asyncio.run(main()):
...     print(line)
201
{'source': 'ada', 'target': 'bob', 'amount': 30, 'position': 5}
{'account': 'bob', 'owner': 'Bob', 'balance': 30}
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations, which
# name the service made inside create_app.
import argparse
import inspect
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field

from eventcore.clock import Clock, IdFactory, system_clock, uuid7
from eventcore.events import RecordedEvent
from eventcore.examples.bank import (
    EVENTS,
    AccountOpened,
    Deposit,
    MoneyDeposited,
    MoneyWithdrawn,
    OpenAccount,
    Transfer,
)
from eventcore.projections import InMemoryCheckpointStore, ProjectionConfig
from eventcore.types import StreamId
from eventcore.web import (
    AsyncProjection,
    EventCoreService,
    ServiceProjection,
    ThreadedProjection,
    Writer,
)

__all__ = ["AccountsView", "create_app", "main", "open_store"]

PREFIX = "account-"
"""Account ``ada`` is the stream ``account-ada``."""

AccountId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", examples=["ada"])]


# -- the read model ------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRow:
    account: str
    owner: str
    balance: int


class AccountsView:
    """Owner and balance of every account, kept up to date by a projection (in memory:
    rebuilt from the log at every start)."""

    name = "accounts"

    def __init__(self) -> None:
        self._rows: dict[str, AccountRow] = {}
        self._lock = threading.Lock()  # the projection thread writes, the endpoints read

    def apply(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        with self._lock:
            match event:
                case AccountOpened(account=stream, owner=owner):
                    key = stream.removeprefix(PREFIX)
                    self._rows[key] = AccountRow(key, owner, 0)
                case MoneyDeposited(account=stream, amount=amount):
                    self._add(stream.removeprefix(PREFIX), amount)
                case MoneyWithdrawn(account=stream, amount=amount):
                    self._add(stream.removeprefix(PREFIX), -amount)

    def _add(self, key: str, amount: int) -> None:
        row = self._rows[key]
        self._rows[key] = AccountRow(key, row.owner, row.balance + amount)

    def get(self, account: str) -> AccountRow | None:
        with self._lock:
            return self._rows.get(account)

    def all(self) -> list[AccountRow]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda row: row.account)


# -- the HTTP interface --------------------------------------------------------------------


class OpenAccountRequest(BaseModel):
    account: AccountId
    owner: str = Field(min_length=1, max_length=200)
    initial_deposit: int = Field(0, ge=0)


class DepositRequest(BaseModel):
    amount: int = Field(gt=0)


class TransferRequest(BaseModel):
    source: AccountId
    target: AccountId
    amount: int = Field(gt=0)


class Written(BaseModel):
    position: int


class AccountOpenedResponse(BaseModel):
    account: str
    position: int


class TransferResponse(BaseModel):
    source: str
    target: str
    amount: int
    position: int


class Account(BaseModel):
    account: str
    owner: str
    balance: int


class Accounts(BaseModel):
    accounts: list[Account]
    total: int


def _stream(account: str) -> StreamId:
    return StreamId(PREFIX + account)


def create_app(
    store: Any,
    *,
    projection_store: Any = None,
    ids: IdFactory = uuid7,
    read_timeout: float = 5.0,
) -> FastAPI:
    """The bank service over ``store`` (async or blocking). The accounts projection runs as
    an asyncio task over an async ``store``; over ``projection_store`` (a blocking store on
    the same log) or a blocking ``store``, in a thread."""
    view = AccountsView()
    config = ProjectionConfig(InMemoryCheckpointStore(), poll_interval=0.05)
    projection: ServiceProjection
    if projection_store is None and inspect.iscoroutinefunction(getattr(store, "read_all", None)):
        projection = AsyncProjection(view, store, config)
    else:
        projection = ThreadedProjection(
            view,
            projection_store or store,
            config,
            close_store=projection_store is not None,
        )
    service = EventCoreService(store, projections=[projection], ids=ids, read_timeout=read_timeout)
    app = FastAPI(
        title="EventCore bank",
        summary="Commands as POST endpoints, a projection as GET endpoints.",
        lifespan=service.lifespan,
    )
    service.install(app)
    accounts_read = Depends(service.read_model("accounts"))

    @app.post("/accounts", status_code=201, response_model=AccountOpenedResponse)
    async def open_account(
        body: OpenAccountRequest, write: Annotated[Writer, Depends(service.writer)]
    ) -> AccountOpenedResponse:
        """Open an account, optionally with a first deposit."""
        result = await write(
            OpenAccount(
                account=_stream(body.account),
                owner=body.owner,
                initial_deposit=body.initial_deposit,
            )
        )
        return AccountOpenedResponse(account=body.account, position=result.last_position or 0)

    @app.post("/accounts/{account}/deposits", status_code=201, response_model=Written)
    async def deposit(
        account: str, body: DepositRequest, write: Annotated[Writer, Depends(service.writer)]
    ) -> Written:
        """Credit an open account."""
        result = await write(Deposit(account=_stream(account), amount=body.amount))
        return Written(position=result.last_position or 0)

    @app.post("/transfers", status_code=201, response_model=TransferResponse)
    async def transfer(
        body: TransferRequest, write: Annotated[Writer, Depends(service.writer)]
    ) -> TransferResponse:
        """Move money between two accounts: both change in one atomic write, or neither."""
        result = await write(
            Transfer(source=_stream(body.source), target=_stream(body.target), amount=body.amount)
        )
        return TransferResponse(
            source=body.source,
            target=body.target,
            amount=body.amount,
            position=result.last_position or 0,
        )

    @app.get("/accounts", response_model=Accounts, dependencies=[accounts_read])
    async def list_accounts() -> Accounts:
        """Every account with its balance, and the total money in the bank."""
        rows = view.all()
        return Accounts(
            accounts=[Account(account=r.account, owner=r.owner, balance=r.balance) for r in rows],
            total=sum(r.balance for r in rows),
        )

    @app.get("/accounts/{account}", response_model=Account, dependencies=[accounts_read])
    async def get_account(account: str) -> Account:
        """One account; 404 if the read model does not know it."""
        row = view.get(account)
        if row is None:
            raise HTTPException(404, f"no account {account!r}; open it with POST /accounts")
        return Account(account=row.account, owner=row.owner, balance=row.balance)

    app.state.eventcore = service
    app.state.accounts = view
    return app


# -- running it ----------------------------------------------------------------------------


def open_store(
    database: str | os.PathLike[str] | None = None,
    *,
    clock: Clock = system_clock,
    ids: IdFactory = uuid7,
    environ: dict[str, str] | None = None,
) -> tuple[Any, Any]:
    """``(async store, blocking store for the projection or None)``: PostgreSQL when
    ``EVENTCORE_POSTGRES_URL`` is set, else SQLite in ``database``."""
    env = dict(os.environ if environ is None else environ)
    if env.get("EVENTCORE_POSTGRES_URL"):
        from eventcore.stores.postgres import (
            AsyncPostgresEventStore,
            PostgresConfig,
            PostgresEventStore,
        )

        config = PostgresConfig.from_env(env)
        return (
            AsyncPostgresEventStore(config, events=EVENTS, clock=clock, ids=ids),
            PostgresEventStore(config, events=EVENTS, clock=clock, ids=ids),
        )
    from eventcore.stores.sqlite import AsyncSqliteEventStore

    path = Path(database if database is not None else "build/service/bank.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    return AsyncSqliteEventStore(path, events=EVENTS, clock=clock, ids=ids), None


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m eventcore.examples.service [--port 8000] [--database FILE]``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1")
    parser.add_argument(
        "--database", default=None, help="SQLite file (default build/service/bank.db)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    store, projection_store = open_store(args.database)
    if projection_store is not None:  # the DSN without its password
        where = f"PostgreSQL ({store.config.masked_dsn}, schema {store.config.schema})"
    else:
        where = f"SQLite ({store.database.name})"
    print(f"EventCore bank on {where}: http://127.0.0.1:{args.port}/docs", flush=True)
    uvicorn.run(
        create_app(store, projection_store=projection_store),
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
