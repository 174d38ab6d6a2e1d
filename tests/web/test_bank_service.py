"""The bank service over HTTP (in-process, httpx + ASGITransport) on SQLite and PostgreSQL:
every mapping of an outcome to a status, every header EventCore reads or writes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from web_support import Bank, open_accounts

from eventcore.web import CORRELATION_NAMESPACE, PROBLEM_JSON


async def head(app: FastAPI) -> int:
    return int(await app.state.eventcore.store.head())


def problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].endswith(slug), body
    assert body["correlation_id"] == r.headers["X-Correlation-ID"]
    return body


def test_commands_write_and_the_read_model_answers_after_the_write(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        await open_accounts(client, ada=100, bob=0)
        r = await client.post("/transfers", json={"source": "ada", "target": "bob", "amount": 30})
        assert r.status_code == 201
        position = int(r.headers["EventCore-Position"])
        assert r.json() == {"source": "ada", "target": "bob", "amount": 30, "position": position}
        assert position == await head(app)
        r = await client.post("/accounts/bob/deposits", json={"amount": 5})
        assert r.status_code == 201
        last = int(r.headers["EventCore-Position"])
        assert r.json() == {"position": last}

        read = await client.get("/accounts", headers={"EventCore-Min-Position": str(last)})
        assert read.status_code == 200
        assert int(read.headers["EventCore-Position"]) >= last
        assert read.json() == {
            "accounts": [
                {"account": "ada", "owner": "Ada", "balance": 70},
                {"account": "bob", "owner": "Bob", "balance": 35},
            ],
            "total": 105,
        }
        one = await client.get(f"/accounts/bob?min_position={last}")
        assert one.json() == {"account": "bob", "owner": "Bob", "balance": 35}

    bank(scenario)


def test_malformed_json_is_400_and_writes_nothing(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        await open_accounts(client, ada=100, bob=0)
        before = await head(app)
        r = await client.post(
            "/transfers", content=b'{"source": "ada",', headers={"content-type": "application/json"}
        )
        body = problem(r, 400, "malformed-json")
        assert body["errors"][0]["type"] == "json_invalid"
        assert await head(app) == before

    bank(scenario)


def test_a_body_that_breaks_the_schema_is_422_and_names_the_field(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        await open_accounts(client, ada=100, bob=0)
        before = await head(app)
        r = await client.post("/transfers", json={"source": "ada", "target": "bob", "amount": -5})
        body = problem(r, 422, "invalid-request")
        assert body["errors"][0]["loc"] == ["body", "amount"]
        assert "amount" in body["detail"]
        r = await client.post("/accounts", json={"account": "no spaces", "owner": "X"})
        assert problem(r, 422, "invalid-request")["errors"][0]["loc"] == ["body", "account"]
        assert await head(app) == before

    bank(scenario)


def test_unknown_accounts_404_on_reads_and_422_on_commands(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        position = await open_accounts(client, ada=100)
        r = await client.get(f"/accounts/nobody?min_position={position}")
        body = problem(r, 404, "about:blank")
        assert body["title"] == "Not Found"
        assert "nobody" in body["detail"]
        r = await client.post("/transfers", json={"source": "ada", "target": "zed", "amount": 1})
        body = problem(r, 422, "business-rule-violation")
        assert body["error"] == "UnknownAccount"
        assert body["detail"].startswith("account-zed is not an open account")
        r = await client.post("/accounts/zed/deposits", json={"amount": 1})
        assert problem(r, 422, "business-rule-violation")["error"] == "UnknownAccount"
        assert await head(app) == position
        r = await client.get("/no-such-route")
        problem(r, 404, "about:blank")

    bank(scenario)


def test_a_broken_rule_is_422_with_the_rules_message(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        position = await open_accounts(client, ada=100, bob=0)
        r = await client.post("/transfers", json={"source": "ada", "target": "bob", "amount": 500})
        body = problem(r, 422, "business-rule-violation")
        assert body["detail"] == "account-ada holds 100, cannot withdraw 500"
        assert body["error"] == "InsufficientFunds"
        assert body["title"] == "Business rule violated"
        assert "EventCore-Position" not in r.headers
        r = await client.post("/accounts", json={"account": "ada", "owner": "Ada"})
        assert problem(r, 422, "business-rule-violation")["detail"] == "account-ada is already open"
        assert await head(app) == position

    bank(scenario)


def test_a_repeated_idempotency_key_returns_the_first_response_and_writes_once(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        await open_accounts(client, ada=100, bob=0)
        move = {"source": "ada", "target": "bob", "amount": 10}
        key = {"Idempotency-Key": '"transfer-7f3a"'}  # a structured-field string
        first = await client.post("/transfers", json=move, headers=key)
        after_first = await head(app)
        again = await client.post(
            "/transfers", json=move, headers={"Idempotency-Key": "transfer-7f3a"}
        )
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert again.headers["EventCore-Position"] == first.headers["EventCore-Position"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        assert await head(app) == after_first

        other = await client.post(
            "/transfers", json={**move, "amount": 11}, headers={"Idempotency-Key": "transfer-7f3a"}
        )
        body = problem(other, 422, "idempotency-key-reused")
        assert body["idempotency_key"] == "transfer-7f3a"
        bad = await client.post("/transfers", json=move, headers={"Idempotency-Key": "x" * 300})
        assert problem(bad, 400, "invalid-header")["header"] == "Idempotency-Key"
        assert await head(app) == after_first
        read = await client.get("/accounts", headers={"EventCore-Min-Position": str(after_first)})
        assert read.json()["total"] == 100
        assert [a["balance"] for a in read.json()["accounts"]] == [90, 10]

    bank(scenario)


def test_correlation_ids_round_trip_into_the_events(bank: Bank) -> None:
    given = "0191b7a4-0c7e-7cc4-8a7e-0e0a3a3d1c00"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> list[Any]:
        await open_accounts(client, ada=100, bob=0)
        move = {"source": "ada", "target": "bob", "amount": 1}
        sent = [
            {"X-Correlation-ID": given},
            {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
            {"X-Correlation-ID": "checkout-42", "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
            {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},  # invalid
            {},
        ]
        returned = []
        for headers in sent:
            r = await client.post("/transfers", json=move, headers=headers)
            assert r.status_code == 201
            events = await app.state.eventcore.store.read_all(
                after=int(r.headers["EventCore-Position"]) - 2
            )
            assert {str(e.metadata.correlation_id) for e in events} == {
                r.headers["X-Correlation-ID"]
            }
            returned.append(r.headers["X-Correlation-ID"])
        bad = await client.post("/transfers", json=move, headers={"X-Correlation-ID": "has space"})
        assert problem(bad, 400, "invalid-header")["header"] == "X-Correlation-ID"
        failed = await client.post(
            "/transfers", json={**move, "amount": 10**6}, headers={"X-Correlation-ID": given}
        )
        assert failed.headers["X-Correlation-ID"] == given == failed.json()["correlation_id"]
        return returned

    returned = bank(scenario)
    assert returned[0] == given
    assert returned[1] == str(uuid.UUID(hex=trace))
    assert returned[2] == str(uuid.uuid5(CORRELATION_NAMESPACE, "checkout-42"))
    assert len(set(returned)) == 5  # the invalid traceparent and no header: new ids


def test_a_read_waits_for_the_write_it_names(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        position = await open_accounts(client, ada=100, bob=0)
        # Ask for the position the next write will take, before writing it: the read waits.
        waiting = asyncio.create_task(
            client.get("/accounts/bob", headers={"EventCore-Min-Position": str(position + 2)})
        )
        await asyncio.sleep(0.05)
        assert not waiting.done()
        r = await client.post("/transfers", json={"source": "ada", "target": "bob", "amount": 25})
        assert int(r.headers["EventCore-Position"]) == position + 2
        read = await asyncio.wait_for(waiting, 10)
        assert read.status_code == 200
        assert read.json()["balance"] == 25
        assert int(read.headers["EventCore-Position"]) >= position + 2

    bank(scenario)


def test_a_read_model_that_stays_behind_is_503_with_retry_after(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> None:
        position = await open_accounts(client, ada=100)
        future = position + 1000
        r = await client.get(
            "/accounts", headers={"EventCore-Min-Position": str(future), "Prefer": "wait=0.2"}
        )
        body = problem(r, 503, "read-model-behind")
        assert r.headers["Retry-After"] == "1"
        assert (body["read_model"], body["wanted"], body["reached"]) == (
            "accounts",
            future,
            position,
        )
        now = await client.get(
            "/accounts", headers={"EventCore-Min-Position": str(position), "Prefer": "wait=3"}
        )
        assert now.status_code == 200
        assert now.headers["Preference-Applied"] == "wait=3"
        bad = await client.get("/accounts", headers={"EventCore-Min-Position": "soon"})
        assert problem(bad, 400, "invalid-header")["header"] == "EventCore-Min-Position"
        negative = await client.get("/accounts?min_position=-1")
        assert problem(negative, 422, "invalid-request")["errors"][0]["loc"] == [
            "query",
            "min_position",
        ]

    bank(scenario)


def test_the_service_documents_itself_in_openapi(bank: Bank) -> None:
    async def scenario(client: httpx.AsyncClient, app: FastAPI) -> dict[str, Any]:
        r = await client.get("/openapi.json")
        assert r.status_code == 200
        spec: dict[str, Any] = r.json()
        return spec

    spec = bank(scenario)
    assert set(spec["paths"]) == {
        "/accounts",
        "/accounts/{account}",
        "/accounts/{account}/deposits",
        "/transfers",
    }
    transfer = spec["paths"]["/transfers"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in transfer["parameters"]}
    read = spec["paths"]["/accounts"]["get"]
    assert {"min_position", "EventCore-Min-Position", "prefer"} <= {
        p["name"] for p in read["parameters"]
    }
