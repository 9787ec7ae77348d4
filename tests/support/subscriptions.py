"""Subscription clients: gql over graphql-transport-ws, and a raw legacy graphql-ws client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


@asynccontextmanager
async def gql_session(http_url: str, token: str | None) -> AsyncIterator:
    transport = WebsocketsTransport(
        url=ws_url(http_url),
        init_payload={"Authorization": f"Bearer {token}"} if token else {},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session


async def gql_subscribe(session, query: str, variables: dict | None = None) -> AsyncIterator[dict]:
    async for result in session.subscribe(GraphQLRequest(query, variable_values=variables or {})):
        yield result


class LegacyGraphQLWS:
    """The `graphql-ws` protocol of subscriptions-transport-ws, spoken by hand."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    @asynccontextmanager
    async def connect(cls, http_url: str, payload: dict) -> AsyncIterator[LegacyGraphQLWS]:
        async with websockets.connect(ws_url(http_url), subprotocols=["graphql-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            yield cls(ws)

    async def receive(self) -> dict:
        while True:
            message = json.loads(await self.ws.recv())
            if message["type"] != "ka":  # keep-alives
                return message

    async def subscribe(self, query: str, variables: dict | None = None, op_id: str = "1") -> AsyncIterator[dict]:
        await self.ws.send(json.dumps(
            {"type": "start", "id": op_id, "payload": {"query": query, "variables": variables or {}}}
        ))
        while True:
            message = await self.receive()
            if message["type"] == "data":
                yield message["payload"]
            elif message["type"] == "complete":
                return
            elif message["type"] == "error":
                raise AssertionError(message)
