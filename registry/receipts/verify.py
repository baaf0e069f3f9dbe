"""Check a saved answer from the chain alone: who signed it, with which weights, whether that
node was staked and serving the version when it answered, and whether the bytes still match.

:func:`verify_answer` takes an answer as it was saved — the JSON body the gateway sent, or what
the official ``openai`` client returned dumped with ``model_dump()`` — whose ``anchorml`` field
holds the receipt and the canonical request (or the receipt alone, from the ``anchorml-receipt``
header). Steps:

1. the receipt is parsed and its signer recovered from the EIP-712 signature under this
   deployment's domain (chain id, verifying contract);
2. the version is read from ModelRegistry (root CID, manifest sha256, revoked flag, name@tag);
3. the signer's record is read *as it was* at the block whose timestamp is the latest at or
   before ``issued_at`` (found by binary search on block timestamps): registered, stake, eligible,
   serving the version (not serving is reported, not a failure: a gateway's in-process answers
   are signed by a staked key that serves nothing). A chain that cannot answer calls at past
   blocks is read at its head, and the report says so;
4. the response (without ``anchorml``) is hashed and compared with the receipt's response hash,
   and the canonical request with its request hash.

What fails is collected as typed :class:`ReceiptError` values in :attr:`ReceiptReport.problems`;
:meth:`ReceiptReport.raise_for_problems` raises the first (the CLI prints it as one line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from registry.chain.connection import Chain
from registry.chain.events import EventScanner
from registry.chain.failures import translated
from registry.errors import AnchormlError, ModelNotFoundError
from registry.receipts import (
    ReceiptError,
    SignedReceipt,
    is_deterministic,
    receipt_domain,
    request_hash,
    response_hash,
)

if TYPE_CHECKING:  # registry.sdk imports the clients, which import this package's core
    from registry.sdk import Anchorml

#: The field of an answer body that carries the receipt and the canonical request.
ANSWER_FIELD = "anchorml"
#: What each answer ``object`` is the answer of.
_ENDPOINT_OF_OBJECT = {"chat.completion": "chat", "text_completion": "completions"}


# --- errors ----------------------------------------------------------------------------------


class MalformedReceiptError(ReceiptError):
    """The answer carries no receipt, or one that does not parse."""

    code = "malformed_receipt"


class ReceiptDomainError(ReceiptError):
    """The receipt was signed for another chain or deployment than the one connected."""

    code = "receipt_wrong_chain"


class SignatureMismatchError(ReceiptError):
    """The signature does not recover to the signer the receipt names."""

    code = "signature_mismatch"


class RequestMismatchError(ReceiptError):
    """The saved request does not hash to the receipt's request hash."""

    code = "request_mismatch"


class ResponseMismatchError(ReceiptError):
    """The saved response does not hash to the receipt's response hash."""

    code = "response_mismatch"


class UnknownVersionError(ReceiptError):
    """The receipt names a model version ModelRegistry does not hold."""

    code = "receipt_unknown_version"


class SignerNotAccountableError(ReceiptError):
    """The signer was not a registered, staked node when it answered (it could not be
    challenged or slashed)."""

    code = "signer_not_accountable"


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeAtTime:
    """The signer's NodeRegistry record at one block.

    Attributes:
        block: the block read (None: the receipt predates the deployment; nothing is read).
        timestamp: that block's timestamp.
        historical: False when the chain could not answer at ``block`` and its head was read.
        registered, stake_wei, eligible, serving: the record and the two views.
        may_serve: ModelRegistry's server restriction (None where the contract has none).
    """

    block: int | None
    timestamp: int | None
    historical: bool
    registered: bool = False
    stake_wei: int = 0
    eligible: bool = False
    serving: bool = False
    may_serve: bool | None = None


@dataclass(frozen=True)
class Weights:
    """The version a receipt names, as ModelRegistry records it."""

    version_id: bytes
    ref: str | None
    cid: str
    manifest_sha256: bytes
    revoked: bool


@dataclass(frozen=True)
class ReceiptReport:
    """Everything :func:`verify_answer` found; :attr:`ok` when nothing failed."""

    signed: SignedReceipt
    signer: str
    endpoint: str
    weights: Weights | None
    node: NodeAtTime
    request_matches: bool | None
    response_matches: bool
    deterministic: bool
    notes: tuple[str, ...] = ()
    problems: tuple[ReceiptError, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether the receipt verified in every respect."""
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise the first problem found (nothing when :attr:`ok`)."""
        if self.problems:
            raise self.problems[0]


# --- parsing an answer -----------------------------------------------------------------------


@dataclass(frozen=True)
class SavedAnswer:
    """A saved answer taken apart: its receipt, canonical request and response body."""

    signed: SignedReceipt
    request: dict[str, Any] | None
    response: dict[str, Any]
    endpoint: str


def endpoint_of(response: Mapping[str, Any], request: Mapping[str, Any] | None = None) -> str:
    """The endpoint an answer came from: the canonical request's ``endpoint`` when given, else
    the answer's ``object`` (``list`` of ``embedding`` objects: embeddings; of rows:
    classifications).

    Raises:
        MalformedReceiptError: the answer is of no known shape.
    """
    if request is not None and isinstance(request.get("endpoint"), str):
        return str(request["endpoint"])
    kind = response.get("object")
    if isinstance(kind, str) and kind in _ENDPOINT_OF_OBJECT:
        return _ENDPOINT_OF_OBJECT[kind]
    data = response.get("data")
    if kind == "list" and isinstance(data, list) and data and isinstance(data[0], Mapping):
        return "embeddings" if data[0].get("object") == "embedding" else "classifications"
    raise MalformedReceiptError("the answer is not an embeddings, classification, chat or "
                                "completion body")  # fmt: skip


def split_answer(answer: Mapping[str, Any], header: str | None = None) -> SavedAnswer:
    """Take a saved answer apart.

    Args:
        answer: the body (a dict, e.g. ``openai``'s ``response.model_dump()``).
        header: the ``anchorml-receipt`` header value, when the receipt was saved from it.

    Raises:
        MalformedReceiptError: no receipt, one that does not parse, or a header and a body
            receipt that differ.
    """
    if not isinstance(answer, Mapping):
        raise MalformedReceiptError("the answer is not a JSON object")
    extension = answer.get(ANSWER_FIELD)
    if extension is not None and not isinstance(extension, Mapping):
        raise MalformedReceiptError(f"the answer's {ANSWER_FIELD!r} field is not an object")
    extension = extension or {}
    try:
        in_body = (
            SignedReceipt.from_json(dict(extension["receipt"])) if "receipt" in extension else None
        )
        in_header = SignedReceipt.from_header(header) if header else None
    except ReceiptError as exc:
        raise MalformedReceiptError(f"the receipt does not parse: {exc.message}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedReceiptError(f"the receipt does not parse: {type(exc).__name__}") from None
    if in_body is not None and in_header is not None and in_body != in_header:
        raise MalformedReceiptError("the header's receipt differs from the body's")
    signed = in_header or in_body
    if signed is None:
        raise MalformedReceiptError(
            f"the answer has no receipt (no {ANSWER_FIELD!r} field; pass the "
            "anchorml-receipt header with --receipt)"
        )
    request = extension.get("request")
    if request is not None and not isinstance(request, Mapping):
        raise MalformedReceiptError("the answer's canonical request is not an object")
    response = {k: v for k, v in answer.items() if k != ANSWER_FIELD}
    request_dict = dict(request) if request is not None else None
    return SavedAnswer(signed, request_dict, response, endpoint_of(response, request_dict))


# --- the chain -------------------------------------------------------------------------------


def block_at(chain: Chain, timestamp: int, low: int = 0) -> int | None:
    """The latest block whose timestamp is at or before ``timestamp`` (binary search between
    block ``low`` and the head); None when even block ``low`` is later."""

    def stamp(number: int) -> int:
        with translated(f"eth_getBlockByNumber at {chain.url}"):
            return int(chain.w3.eth.get_block(number)["timestamp"])

    high = chain.head()
    if stamp(high) <= timestamp:
        return high
    if stamp(low) > timestamp:
        return None
    while high - low > 1:  # invariant: stamp(low) <= timestamp < stamp(high)
        middle = (low + high) // 2
        if stamp(middle) <= timestamp:
            low = middle
        else:
            high = middle
    return low


def _has_function(contract: Any, name: str) -> bool:
    return any(item.get("type") == "function" and item.get("name") == name for item in contract.abi)


def node_at(sdk: Anchorml, signer: str, version_id: bytes, issued_at: int) -> NodeAtTime:
    """The signer's record at the latest block at or before ``issued_at`` (see the module doc);
    the head when the chain cannot answer there."""
    chain = sdk.chain
    block = block_at(chain, issued_at, sdk.deployment.deploy_block)
    if block is None:
        return NodeAtTime(block=None, timestamp=None, historical=True)
    try:
        return _read_node(sdk, signer, version_id, block, historical=True)
    except AnchormlError:
        # Some nodes keep no state for past blocks (a pruned full node); read the head.
        return _read_node(sdk, signer, version_id, chain.head(), historical=False)


def _read_node(
    sdk: Anchorml, signer: str, version_id: bytes, block: int, *, historical: bool
) -> NodeAtTime:
    nodes, models = sdk.nodes.contract.functions, sdk.models.contract.functions

    def call(fn: Any) -> Any:
        with translated(f"call at block {block} to {sdk.chain.url}"):
            return fn.call(block_identifier=block)

    with translated(f"eth_getBlockByNumber at {sdk.chain.url}"):
        timestamp = int(sdk.chain.w3.eth.get_block(block)["timestamp"])
    stake, _unlock, _slashes, registered, _endpoint, _key = call(nodes.getNode(signer))
    may_serve = None
    if _has_function(sdk.models.contract, "mayServe"):
        may_serve = bool(call(models.mayServe(version_id, signer)))
    return NodeAtTime(
        block=block,
        timestamp=timestamp,
        historical=historical,
        registered=bool(registered),
        stake_wei=int(stake),
        eligible=bool(call(nodes.isEligible(signer))),
        serving=bool(call(nodes.serves(signer, version_id))),
        may_serve=may_serve,
    )


def weights_of(sdk: Anchorml, version_id: bytes) -> Weights | None:
    """The version's CID, manifest sha256, revoked flag and ``name@tag`` (None: unknown)."""
    try:
        version = sdk.models.get_version(version_id)
    except ModelNotFoundError:
        return None
    return Weights(
        version_id=version_id,
        ref=_ref_of(sdk, version_id),
        cid=version.cid,
        manifest_sha256=version.manifest_sha256,
        revoked=version.revoked,
    )


def _ref_of(sdk: Anchorml, version_id: bytes) -> str | None:
    """``name@tag`` of a version, from its ``VersionRegistered`` and ``ModelCreated`` events."""
    start = sdk.deployment.deploy_block
    registered = EventScanner(sdk.chain, [sdk.models], ["VersionRegistered"])
    for event in registered.scan(start, where={"versionId": version_id}):
        tag, model = str(event.args["tag"]), bytes(event.args["modelId"])
        created = EventScanner(sdk.chain, [sdk.models], ["ModelCreated"])
        for made in created.scan(start, where={"modelId": model}):
            return f"{made.args['name']}@{tag}"
    return None


def _hash_or_none(request: dict[str, Any]) -> bytes | None:
    try:
        return request_hash(request)
    except (ValueError, TypeError):  # NaN, or a value JSON cannot hold
        return None


def _deterministic(endpoint: str, request: dict[str, Any]) -> bool:
    try:
        return is_deterministic(endpoint, request)
    except ReceiptError:
        return False


# --- the check -------------------------------------------------------------------------------


def verify_answer(
    sdk: Anchorml, answer: Mapping[str, Any], receipt_header: str | None = None
) -> ReceiptReport:
    """Verify a saved answer against ``sdk``'s chain (see the module doc).

    Args:
        sdk: a connected SDK handle (read-only is enough).
        answer: the saved body (with its ``anchorml`` field), e.g. ``openai``'s ``model_dump()``.
        receipt_header: the ``anchorml-receipt`` header value, when saved apart from the body.

    Returns:
        The report; its ``problems`` list what failed (``raise_for_problems`` raises the first).

    Raises:
        MalformedReceiptError: no receipt, or one that does not parse.
        ChainError: the chain could not be read.
    """
    saved = split_answer(answer, receipt_header)
    signed, receipt = saved.signed, saved.signed.receipt
    problems: list[ReceiptError] = []
    notes: list[str] = []
    domain = receipt_domain(sdk.deployment)
    if signed.domain.chain_id != domain.chain_id or to_checksum_address(
        signed.domain.verifying_contract
    ) != to_checksum_address(domain.verifying_contract):
        problems.append(
            ReceiptDomainError(
                f"the receipt was signed for chain {signed.domain.chain_id} contract "
                f"{signed.domain.verifying_contract}, not this deployment (chain "
                f"{domain.chain_id} contract {domain.verifying_contract})"
            )
        )
    try:
        recovered = signed.recover()
    except ReceiptError:
        recovered = ""
    if recovered != to_checksum_address(receipt.signer):
        problems.append(
            SignatureMismatchError(
                f"the signature recovers to {recovered or 'no address'}, not to the signer "
                f"the receipt names ({receipt.signer})"
            )
        )
    try:
        response_ok = response_hash(saved.endpoint, saved.response) == receipt.response_hash
    except ReceiptError:
        response_ok = False  # not even an answer of its endpoint's shape
    if not response_ok:
        problems.append(
            ResponseMismatchError("the response does not match the receipt's response hash")
        )
    request_ok: bool | None = None
    deterministic = receipt.deterministic
    if saved.request is None:
        notes.append("the answer carries no canonical request: its hash was not checked")
    else:
        request_ok = _hash_or_none(saved.request) == receipt.request_hash
        if not request_ok:
            problems.append(
                RequestMismatchError("the request does not match the receipt's request hash")
            )
        deterministic = deterministic and _deterministic(saved.endpoint, saved.request)
    weights = weights_of(sdk, receipt.version_id)
    if weights is None:
        problems.append(
            UnknownVersionError(f"version 0x{receipt.version_id.hex()} is not registered")
        )
    elif weights.revoked:
        notes.append("the version has been revoked since")
    node = node_at(sdk, receipt.signer, receipt.version_id, receipt.issued_at)
    if not node.historical:
        notes.append(
            "the chain cannot answer calls at past blocks: the signer's record is shown as it "
            "is now, not as it was when it answered"
        )
    if node.block is None:
        notes.append("the receipt is dated before the contracts were deployed")
    if node.block is not None and node.historical and not (node.registered and node.eligible):
        # A chain's block times can run ahead of the signer's clock (a devnet mining several
        # blocks a second stamps each one a second later): a node registered "after" its
        # answer by the chain's clock is still accountable if it is staked now.
        head = sdk.chain.head()
        now = _read_node(sdk, receipt.signer, receipt.version_id, head, historical=False)
        if now.registered and now.eligible:
            notes.append(
                f"the signer was not yet staked at block {node.block} (the last one dated at or "
                "before the receipt) but is now: the chain's clock may run ahead of the "
                "signer's; it can still be challenged and slashed"
            )
            node = replace(now, historical=True)
    if node.block is not None and not (node.registered and node.eligible):
        missing = "registered" if not node.registered else "staked"
        problems.append(
            SignerNotAccountableError(
                f"the signer {receipt.signer} was not a {missing} node when it answered"
            )
        )
    elif node.block is not None and not node.serving:
        # Not a failure: a gateway signs its in-process answers with a staked key that declares
        # no versions (so nobody routes to it); the signer is still accountable for the answer.
        notes.append(
            "the signer had not declared it serves this version (a gateway's in-process "
            "answer, or a node answering outside its declaration)"
        )
    return ReceiptReport(
        signed=signed,
        signer=recovered or receipt.signer,
        endpoint=saved.endpoint,
        weights=weights,
        node=node,
        request_matches=request_ok,
        response_matches=response_ok,
        deterministic=deterministic,
        notes=tuple(notes),
        problems=tuple(problems),
    )
