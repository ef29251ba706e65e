"""Ethereum addresses and signatures with eth-utils and eth-account: EIP-55 checksums and EIP-191 signers. Both are
imported on first use: an instance that never sees a wallet does not load them (cold starts)."""

from __future__ import annotations

from ...domain.crypto import HEX_ADDRESS, SIGNATURE, InvalidWallet


class EthereumSignatures:
    def checksum(self, address: object) -> str:
        """An address in its EIP-55 checksummed form. All lower (or all upper) case hex is taken as it is; mixed
        case must be the right checksum, since a typo in a mixed-case address is what the checksum exists to
        catch."""
        from eth_utils import is_checksum_address, to_checksum_address

        if not isinstance(address, str) or not HEX_ADDRESS.fullmatch(address):
            raise InvalidWallet(f"{address!r} is not an Ethereum address (0x and 40 hex digits)")
        digits = address[2:]
        if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
            raise InvalidWallet(f"{address} has a wrong EIP-55 checksum: check it was copied whole")
        return str(to_checksum_address(address))

    def signer_of(self, message: str, signature: object) -> str:
        """The address whose key signed `message` (EIP-191 personal message), checksummed."""
        from eth_account import Account
        from eth_account.messages import encode_defunct

        if not isinstance(signature, str) or not SIGNATURE.fullmatch(signature):
            raise InvalidWallet("the signature must be 0x and 130 hex digits (65 bytes)")
        try:
            return str(Account.recover_message(encode_defunct(text=message), signature=signature))
        except Exception as exc:  # eth-account refuses a malformed v, r or s with several exception types
            raise InvalidWallet(f"the signature cannot be read: {exc}") from exc
