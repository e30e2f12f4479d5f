"""NFT minting after checkout: the `Minter` interface and the built-in signed-receipt minter."""

from paywire.minting.base import Minter, MintError, MintRequest
from paywire.minting.signed_receipt import SignedReceiptMinter, verify_receipt

__all__ = ["MintError", "MintRequest", "Minter", "SignedReceiptMinter", "verify_receipt"]
