"""An EVM chain read with web3 (over HTTP JSON-RPC in production; any web3 provider in tests): ETH transfers from
the blocks' transactions and their receipts, ERC-20 transfers from Transfer logs filtered by contract and recipient.
Requests go in JSON-RPC batches where the provider takes them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar, cast

import requests
from web3 import Web3
from web3.exceptions import BlockNotFound, ProviderConnectionError, TimeExhausted, Web3TypeError

from ...domain.crypto import NATIVE, ChainUnavailable, Transfer

TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex()
DECIMALS_ABI = [{"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [],
                 "outputs": [{"name": "", "type": "uint8"}]}]
BATCH = 100  # requests per JSON-RPC batch
T = TypeVar("T")


def _reached(method: Callable[..., T]) -> Callable[..., T]:
    """The node not answering is ChainUnavailable (a 502 that says so), not a 500."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except (OSError, requests.RequestException, ProviderConnectionError, TimeExhausted) as error:
            raise ChainUnavailable(f"the chain's node did not answer: {error}") from error

    return call


class Web3Chain:
    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._batches = True  # until the provider says it takes none

    @classmethod
    def over_http(cls, url: str, timeout: float = 30.0) -> Web3Chain:
        return cls(Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout})))

    @_reached
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    @_reached
    def head(self) -> int:
        return int(self.w3.eth.block_number)

    @_reached
    def block_hash(self, number: int) -> str | None:
        try:
            return _hex(self.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    @_reached
    def decimals(self, contract: str) -> int:
        return int(self.w3.eth.contract(address=Web3.to_checksum_address(contract), abi=DECIMALS_ABI)
                   .functions.decimals().call())

    @_reached
    def transfers(self, first: int, last: int, to: str, contracts: Collection[str]) -> list[Transfer]:
        chain_id = self.chain_id()
        found = self._token_transfers(chain_id, first, last, to, contracts) if contracts else []
        return found + self._coin_transfers(chain_id, first, last, to)

    def _token_transfers(self, chain_id: int, first: int, last: int, to: str,
                         contracts: Collection[str]) -> list[Transfer]:
        recipient = "0x" + "00" * 12 + to[2:].lower()
        logs = self.w3.eth.get_logs({"fromBlock": first, "toBlock": last,
                                     "address": [Web3.to_checksum_address(c) for c in contracts],
                                     "topics": [TRANSFER_TOPIC, None, recipient]})
        kept = sorted((log for log in logs if not log.get("removed") and len(log["topics"]) == 3),
                      key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        places: dict[str, int] = {}  # transfers counted so far in each transaction, in log order
        found = []
        for log in kept:
            tx_hash = _hex(log["transactionHash"])
            place = places[tx_hash] = places.get(tx_hash, -1) + 1
            found.append(Transfer(chain_id, tx_hash, int(log["logIndex"]), int(log["blockNumber"]),
                                  _hex(log["blockHash"]), Web3.to_checksum_address(bytes(log["topics"][1])[-20:]),
                                  Web3.to_checksum_address(log["address"]), int.from_bytes(bytes(log["data"]), "big"),
                                  place))
        return found

    def _coin_transfers(self, chain_id: int, first: int, last: int, to: str) -> list[Transfer]:
        """ETH sent to `to` by transactions that succeeded (ETH a contract sends on has no transaction of its own
        and is not seen here)."""
        blocks = self._each(range(first, last + 1), lambda n: self.w3.eth.get_block(n, True))
        sent: list[tuple[Any, Any]] = [(block, tx) for block in blocks for tx in block["transactions"]
                                       if isinstance(tx, Mapping) and tx.get("to") == to and int(tx["value"]) > 0]
        receipts = self._each([tx["hash"] for _, tx in sent], self.w3.eth.get_transaction_receipt)
        return [Transfer(chain_id, _hex(tx["hash"]), NATIVE, int(block["number"]), _hex(block["hash"]),
                         Web3.to_checksum_address(tx["from"]), None, int(tx["value"]))
                for (block, tx), receipt in zip(sent, receipts, strict=True) if receipt["status"] == 1]

    def _each(self, items: Iterable[Any], call: Callable[[Any], T]) -> list[T]:
        """`call` on each item, in JSON-RPC batches when the provider takes them."""
        items = list(items)
        if self._batches:
            try:
                found: list[T] = []
                for start in range(0, len(items), BATCH):
                    with self.w3.batch_requests() as batch:
                        for item in items[start:start + BATCH]:
                            batch.add(call(item))  # web3 queues the call
                        found.extend(cast(list[T], batch.execute()))
                return found
            except Web3TypeError:  # "Batch requests are not supported by this provider" (eth-tester)
                self._batches = False
        return [call(item) for item in items]


def _hex(value: Any) -> str:
    """A hash as 0x and lower-case hex, from web3's HexBytes or a string."""
    return value.lower() if isinstance(value, str) else "0x" + bytes(value).hex()
