"""Pure domain model: money, accounts, ledger rules, hashing, Merkle tree. No I/O."""
