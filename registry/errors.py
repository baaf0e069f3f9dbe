"""The one error family of anchorml.

Every error the SDK raises derives from :class:`AnchormlError`. Subtrees group errors by the
boundary they come from (configuration, chain, store, model, access). Each error carries a stable
machine-readable ``code`` that the gateway maps to an HTTP status and the CLI prints, so callers
never need to parse messages.
"""

from __future__ import annotations


class AnchormlError(Exception):
    """Root of every anchorml error.

    Attributes:
        code: stable, machine-readable identifier (``snake_case``) of the error kind.
    """

    code = "anchorml_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AnchormlError, ValueError):
    """A setting is missing or malformed; the message names the setting to fix."""

    code = "config_error"


# --- chain -----------------------------------------------------------------------------------


class ChainError(AnchormlError):
    """Anything that went wrong talking to the chain."""

    code = "chain_error"


class RpcUnavailableError(ChainError, ConnectionError):
    """The JSON-RPC endpoint cannot be reached."""

    code = "rpc_unavailable"


class ChainMismatchError(ChainError):
    """The deployment file belongs to another chain than the connected one."""

    code = "chain_mismatch"


class TransactionError(ChainError):
    """A transaction was not mined in time, was dropped, or ran out of retries."""

    code = "transaction_failed"


class ContractRevertError(ChainError):
    """A contract call reverted. Subclasses are generated from the ABI's custom errors.

    Attributes:
        error_name: the Solidity error name (e.g. ``JobNotOpen``).
        args: the decoded error arguments, by parameter name.
    """

    code = "contract_revert"
    error_name = "Revert"
    signature = ""
    param_names: tuple[str, ...] = ()
    param_types: tuple[str, ...] = ()

    def __init__(self, message: str, args: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.args_by_name: dict[str, object] = dict(args or {})


# --- content store ---------------------------------------------------------------------------


class StoreError(AnchormlError):
    """Anything that went wrong in the content store."""

    code = "store_error"


class InvalidCIDError(StoreError, ValueError):
    """A string does not parse as a CID."""

    code = "invalid_cid"


class ContentNotFoundError(StoreError, KeyError):
    """A CID (or a block under it) is absent from the store."""

    code = "content_not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class CorruptContentError(StoreError):
    """Bytes do not hash to the CID (or manifest digest) that names them."""

    code = "content_corrupt"


class StoreUnavailableError(StoreError, ConnectionError):
    """The IPFS daemon (or store directory) cannot be reached."""

    code = "store_unavailable"


# --- models ----------------------------------------------------------------------------------


class ModelError(AnchormlError):
    """A model directory, manifest or reference is invalid."""

    code = "model_error"


class UnsafeModelError(ModelError):
    """A model carries pickle weights or remote code; it is refused before anything loads."""

    code = "unsafe_model"


class ModelRevokedError(ModelError):
    """The model version was revoked on chain and must not be served."""

    code = "model_revoked"


class ModelNotFoundError(ModelError, KeyError):
    """A model name, version or alias is not registered."""

    code = "model_not_found"

    def __str__(self) -> str:
        return self.message


# --- access ----------------------------------------------------------------------------------


class AccessError(AnchormlError):
    """The caller may not use a model or endpoint."""

    code = "access_denied"


class AuthError(AccessError):
    """A bearer token is missing, expired, malformed or forged."""

    code = "invalid_token"
