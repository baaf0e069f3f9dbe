// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Governed} from "./Governed.sol";
import {JobBoard} from "./JobBoard.sol";
import {NodeRegistry} from "./NodeRegistry.sol";

/// @title Challenges
/// @notice On-chain challenges of signed inference receipts. A node signs every answer it gives
///         with an EIP-712 `Receipt`; anyone holding a receipt for a deterministic request can
///         challenge it within `window` seconds of its issue:
///         1. `challenge` checks the signature (the signer is a registered node), escrows the fee
///            and posts a redundancy-`redundancy` INFER job with params `{"task":"verify"}` on the
///            receipt's version, which the accused signer may not claim. The job's input (a JSON
///            file the challenger stores) holds the receipt, the request and the response.
///         2. Re-executors run the request and deliver a 65-byte verdict file
///            `keccak256("anchorml.verdict.v1") || receiptDigest || uint8 verdict`
///            (1 MATCH, 2 MISMATCH, 3 INVALID), stored as one raw block (CIDv1 raw codec, so the
///            CID digest is the file's sha256): the fee is their reward.
///         3. `resolve` reads the job: finalized with the MISMATCH verdict → the signer is slashed
///            `faultSlash` to the challenger; finalized with anything else → nothing (the fee paid
///            the re-executors); expired or cancelled → the refund is credited to the challenger.
/// @dev The EIP-712 domain is computed here rather than with OpenZeppelin's `EIP712`: that one
///      imports `Strings`, whose `mcopy` the target EVM (shanghai) lacks. Domain: name
///      "anchorml", version "1", this chain, `verifyingContract` = this contract.
///      Pull payments: refunds the job board credits this contract are withdrawn here on
///      `resolve` and credited to the challenger, who calls `withdraw`; slashes are credited by
///      the node registry to the challenger directly (withdrawn there).
contract Challenges is Governed {
    /// @notice A receipt as the node signed it (EIP-712 struct `Receipt`).
    struct Receipt {
        address signer;
        bytes32 versionId;
        bytes32 requestHash;
        bytes32 responseHash;
        uint64 issuedAt;
        bool deterministic;
    }

    /// @notice Where a challenge stands.
    enum Status {
        None,
        Open,
        Slashed,
        Dismissed,
        Refunded
    }

    /// @notice A challenge (four storage slots).
    struct Challenge {
        address challenger;
        uint96 fee;
        address signer;
        uint64 jobId;
        Status status;
        bytes32 versionId;
        bytes32 receiptDigest;
    }

    /// @notice EIP-712 type hash of the domain.
    bytes32 public constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @notice EIP-712 type hash of `Receipt` (the type string is part of the receipt format).
    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(address signer,bytes32 versionId,bytes32 requestHash,bytes32 responseHash,uint64 issuedAt,bool deterministic)"
    );
    /// @notice First 32 bytes of every verdict file.
    bytes32 public constant VERDICT_TAG = keccak256("anchorml.verdict.v1");
    /// @notice The verdict that proves the signer wrong.
    uint8 public constant VERDICT_MISMATCH = 2;
    /// @notice Size in bytes of a verdict file.
    uint40 public constant VERDICT_SIZE = 65;
    /// @notice CIDv1 codec of a raw block (how a verdict file is stored).
    uint8 public constant CODEC_RAW = 0x55;
    /// @notice sha256 of the canonical params `{"task":"verify"}` of every challenge job.
    bytes32 public constant VERIFY_PARAMS_HASH = 0xb73d79b6541db477be3b856a226a17c1364d94c8ba8336da8366b60428a663bc;

    /// @notice Shortest and longest challenge window (seconds after a receipt's issue).
    uint32 public constant MIN_WINDOW = 60;
    /// @notice See `MIN_WINDOW`.
    uint32 public constant MAX_WINDOW = 30 days;
    /// @notice Shortest and longest time re-executors get (the job's deadline and lease).
    uint32 public constant MIN_JOB_TTL = 60;
    /// @notice See `MIN_JOB_TTL`.
    uint32 public constant MAX_JOB_TTL = 7 days;

    /// @notice The job board re-execution jobs are posted on.
    JobBoard public immutable board;
    /// @notice The node registry (who may sign receipts; slashing).
    NodeRegistry public immutable nodes;

    /// @notice Least wei a challenge escrows (all of `msg.value` becomes the job's reward).
    uint96 public fee;
    /// @notice Seconds after a receipt's `issuedAt` during which it can be challenged.
    uint32 public window;
    /// @notice Seconds re-executors have to deliver (the job's deadline and lease).
    uint32 public jobTtl;
    /// @notice How many nodes re-execute a challenged request (the job's redundancy).
    uint8 public redundancy;
    /// @notice Wei slashed from a signer whose receipt is proven wrong (paid to the challenger).
    uint128 public faultSlash;
    /// @notice Id of the last challenge opened.
    uint64 public lastChallengeId;

    uint256 private immutable _deployChainId;
    bytes32 private immutable _deployDomainSeparator;

    mapping(uint64 challengeId => Challenge) private _challenges;
    /// @notice The challenge opened on a receipt digest (0 = none): one challenge per receipt.
    mapping(bytes32 receiptDigest => uint64 challengeId) public challengeOf;

    /// @notice The signature is not a well-formed secp256k1 signature (length, `s` or `v`).
    error MalformedSignature();
    /// @notice The signature is valid but made by `recovered`, not the receipt's `signer`.
    error SignerMismatch(address signer, address recovered);
    /// @notice The receipt's signer is not a registered node.
    error NotANode(address signer);
    /// @notice The receipt is for a sampled (non-deterministic) request: it cannot be re-executed.
    error SampledRequest(bytes32 receiptDigest);
    /// @notice The challenge window of the receipt closed at `deadline`.
    error ReceiptExpired(uint64 issuedAt, uint256 deadline);
    /// @notice The receipt claims to be issued after the current block.
    error ReceiptFromFuture(uint64 issuedAt, uint256 blockTime);
    /// @notice The receipt was already challenged (challenge `challengeId`).
    error AlreadyChallenged(bytes32 receiptDigest, uint64 challengeId);
    /// @notice The challenge escrows less than `fee` (or more than 96 bits).
    error FeeTooLow(uint256 fee, uint256 sent);
    /// @notice No challenge has this id.
    error ChallengeNotFound(uint64 challengeId);
    /// @notice The challenge was resolved already (with `status`).
    error AlreadyResolved(uint64 challengeId, Status status);
    /// @notice The re-execution job has not settled yet (it is `jobStatus`). A k > 1 job whose
    ///         reveal window closed is settled with the board's `finalize` first.
    error NotResolvableYet(uint64 challengeId, JobBoard.Status jobStatus);
    /// @notice The parameters are out of their bounds.
    error InvalidChallengeParams();
    /// @notice Only the job board pays this contract (refunds of challenge jobs).
    error UnexpectedPayment(address from);

    /// @notice A receipt was challenged; job `jobId` re-executes its request.
    event ChallengeOpened(
        uint64 indexed id, address indexed signer, address indexed challenger, uint64 jobId, bytes32 receiptDigest
    );
    /// @notice A challenge was resolved with `outcome`; `slashed` wei were taken from the signer.
    event ChallengeResolved(uint64 indexed id, Status outcome, uint256 slashed);
    /// @notice Parameters changed.
    event ParamsSet(uint96 fee, uint32 window, uint32 jobTtl, uint8 redundancy, uint128 faultSlash);

    /// @param admin Initial default admin and pauser.
    /// @param adminTransferDelay Seconds before a pending admin may accept.
    /// @param board_ The job board (this contract needs its CHALLENGES_ROLE).
    /// @param nodes_ The node registry (this contract needs its SLASHER_ROLE).
    /// @param fee_ Least fee of a challenge.
    /// @param window_ Challenge window in seconds.
    /// @param jobTtl_ Seconds re-executors have.
    /// @param redundancy_ Re-executors per challenge.
    /// @param faultSlash_ Slash of a proven fault.
    constructor(
        address admin,
        uint48 adminTransferDelay,
        JobBoard board_,
        NodeRegistry nodes_,
        uint96 fee_,
        uint32 window_,
        uint32 jobTtl_,
        uint8 redundancy_,
        uint128 faultSlash_
    ) Governed(admin, adminTransferDelay) {
        (board, nodes) = (board_, nodes_);
        _deployChainId = block.chainid;
        _deployDomainSeparator = _buildDomainSeparator();
        _setParams(fee_, window_, jobTtl_, redundancy_, faultSlash_);
    }

    /// @notice Accept refunds of challenge jobs from the job board (`resolve` withdraws them).
    receive() external payable {
        if (msg.sender != address(board)) revert UnexpectedPayment(msg.sender);
    }

    // ----------------------------------------------------------------- challenger

    /// @notice Challenge a signed receipt, escrowing `msg.value` (>= `fee`) as the reward of the
    ///         re-execution job.
    /// @param r The receipt.
    /// @param signature 65-byte `r || s || v` signature of the receipt's EIP-712 digest.
    /// @param inputCodec CIDv1 codec of the job input (the receipt, request and response JSON).
    /// @param inputDigest sha2-256 digest of the job input's root block.
    /// @return id The new challenge's id.
    function challenge(Receipt calldata r, bytes calldata signature, uint8 inputCodec, bytes32 inputDigest)
        external
        payable
        whenNotPaused
        nonReentrant
        returns (uint64 id)
    {
        if (msg.value < fee || msg.value > type(uint96).max) revert FeeTooLow(fee, msg.value);
        bytes32 digest = _checkReceipt(r, signature);
        id = ++lastChallengeId;
        challengeOf[digest] = id;
        // The record is written after the job is posted: it holds the job's id. `nonReentrant`
        // and the immutable board (which calls only the registries) keep that safe.
        uint64 jobId = _postJob(r, inputCodec, inputDigest);
        _challenges[id] = Challenge({
            challenger: msg.sender,
            fee: uint96(msg.value),
            signer: r.signer,
            jobId: jobId,
            status: Status.Open,
            versionId: r.versionId,
            receiptDigest: digest
        });
        emit ChallengeOpened(id, r.signer, msg.sender, jobId, digest);
    }

    /// @notice Settle a challenge once its job settled (or passed its deadline undelivered, in
    ///         which case the job is expired here). Anyone may call it.
    /// @param id The challenge.
    /// @return outcome Slashed, Dismissed or Refunded.
    function resolve(uint64 id) external nonReentrant returns (Status outcome) {
        Challenge storage c = _challenges[id];
        Status status = c.status;
        if (status == Status.None) revert ChallengeNotFound(id);
        if (status != Status.Open) revert AlreadyResolved(id, status);
        uint64 jobId = c.jobId;
        JobBoard.Job memory job = board.getJob(jobId);
        JobBoard.Status jobStatus = job.status;
        // Nobody delivered in time: the job is expired here (the board refunds this contract)
        // rather than making the challenger call `expire` first.
        bool undelivered = (jobStatus == JobBoard.Status.Open || jobStatus == JobBoard.Status.Claimed)
            && block.timestamp >= job.deadline;
        if (jobStatus == JobBoard.Status.Finalized) {
            outcome = board.resultHashOf(jobId) == mismatchResultHash(c.receiptDigest) ? Status.Slashed : Status.Dismissed;
        } else if (undelivered || jobStatus == JobBoard.Status.Expired || jobStatus == JobBoard.Status.Cancelled) {
            outcome = Status.Refunded;
        } else {
            revert NotResolvableYet(id, jobStatus);
        }
        c.status = outcome;
        if (undelivered) board.expire(jobId);
        uint256 slashed = 0;
        address challenger = c.challenger;
        if (outcome == Status.Slashed) {
            // The immutable node registry credits the slash to the challenger (no call out).
            slashed = nodes.slash(c.signer, faultSlash, challenger, jobId);
        } else if (outcome == Status.Refunded) {
            // The board credited the whole reward back to this contract, the job's requester;
            // pull it (with any other refunds still there) and owe it to the challenger.
            if (board.withdrawable(address(this)) != 0) board.withdraw();
            _credit(challenger, c.fee);
        }
        emit ChallengeResolved(id, outcome, slashed);
    }

    /// @notice Change the parameters (admin only), within the contract's bounds.
    /// @param fee_ Least fee of a challenge (non-zero; `faultSlash_` is at least twice it).
    /// @param window_ Challenge window in seconds (`MIN_WINDOW`..`MAX_WINDOW`).
    /// @param jobTtl_ Seconds re-executors have (`MIN_JOB_TTL`..`MAX_JOB_TTL`).
    /// @param redundancy_ Re-executors per challenge (1..the board's `MAX_REDUNDANCY`).
    /// @param faultSlash_ Slash of a proven fault (at least `2 * fee_`).
    /// @dev `window_ + jobTtl_ + board.revealWindow()` must stay below the node registry's
    ///      `unstakeDelay`, so a node that starts leaving right after signing is still staked
    ///      when a challenge of that receipt resolves.
    function setParams(uint96 fee_, uint32 window_, uint32 jobTtl_, uint8 redundancy_, uint128 faultSlash_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setParams(fee_, window_, jobTtl_, redundancy_, faultSlash_);
    }

    // --------------------------------------------------------------------- views

    /// @notice A challenge's record.
    /// @param id The challenge.
    /// @return The challenge (status None if absent).
    function getChallenge(uint64 id) external view returns (Challenge memory) {
        return _challenges[id];
    }

    /// @notice The EIP-712 domain separator of receipts on this chain.
    /// @return The separator.
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == _deployChainId ? _deployDomainSeparator : _buildDomainSeparator();
    }

    /// @notice The EIP-712 digest a node signs for `r`.
    /// @param r The receipt.
    /// @return `keccak256("\x19\x01" || domainSeparator || hashStruct(r))`.
    function receiptDigest(Receipt calldata r) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                RECEIPT_TYPEHASH, r.signer, r.versionId, r.requestHash, r.responseHash, r.issuedAt, r.deterministic
            )
        );
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
    }

    /// @notice The job result hash (as the board's `resultHashOf`) of the MISMATCH verdict on a
    ///         receipt: a 65-byte raw block whose CID digest and sha256 are both
    ///         `sha256(VERDICT_TAG || digest || uint8(2))`.
    /// @param digest The receipt digest.
    /// @return `keccak256(abi.encode(CODEC_RAW, s, s, VERDICT_SIZE))` with that sha256 `s`.
    function mismatchResultHash(bytes32 digest) public pure returns (bytes32) {
        bytes32 s = sha256(abi.encodePacked(VERDICT_TAG, digest, VERDICT_MISMATCH));
        return keccak256(abi.encode(CODEC_RAW, s, s, VERDICT_SIZE));
    }

    // ------------------------------------------------------------------ internal

    /// @dev Revert unless `r` is a challengeable receipt signed by its signer; return its digest.
    function _checkReceipt(Receipt calldata r, bytes calldata signature) private view returns (bytes32 digest) {
        digest = receiptDigest(r);
        // The error's argument (the bad length or `s`) is not needed: any error is malformed.
        // slither-disable-next-line unused-return
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert MalformedSignature();
        if (recovered != r.signer) revert SignerMismatch(r.signer, recovered);
        if (!r.deterministic) revert SampledRequest(digest);
        if (r.issuedAt > block.timestamp) revert ReceiptFromFuture(r.issuedAt, block.timestamp);
        uint256 closesAt = uint256(r.issuedAt) + window;
        if (block.timestamp > closesAt) revert ReceiptExpired(r.issuedAt, closesAt);
        uint64 earlier = challengeOf[digest];
        if (earlier != 0) revert AlreadyChallenged(digest, earlier);
        if (!nodes.getNode(r.signer).registered) revert NotANode(r.signer);
    }

    /// @dev Post the re-execution job of `r`, escrowing `msg.value`, excluding the signer.
    function _postJob(Receipt calldata r, uint8 inputCodec, bytes32 inputDigest) private returns (uint64) {
        JobBoard.JobRequest memory job = JobBoard.JobRequest({
            kind: JobBoard.Kind.Infer,
            versionId: r.versionId,
            inputCodec: inputCodec,
            inputDigest: inputDigest,
            paramsHash: VERIFY_PARAMS_HASH,
            deadline: uint40(block.timestamp + jobTtl),
            leaseSeconds: jobTtl,
            redundancy: redundancy,
            outputModelId: bytes32(0)
        });
        return board.createChallengeJob{value: msg.value}(job, r.signer);
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("anchorml"), keccak256("1"), block.chainid, address(this)));
    }

    function _setParams(uint96 fee_, uint32 window_, uint32 jobTtl_, uint8 redundancy_, uint128 faultSlash_) private {
        if (
            fee_ == 0 || window_ < MIN_WINDOW || window_ > MAX_WINDOW || jobTtl_ < MIN_JOB_TTL
                || jobTtl_ > MAX_JOB_TTL || redundancy_ == 0 || redundancy_ > board.MAX_REDUNDANCY()
                || faultSlash_ < 2 * uint128(fee_)
                || uint256(window_) + jobTtl_ + board.revealWindow() >= nodes.unstakeDelay()
        ) revert InvalidChallengeParams();
        (fee, window, jobTtl, redundancy, faultSlash) = (fee_, window_, jobTtl_, redundancy_, faultSlash_);
        emit ParamsSet(fee_, window_, jobTtl_, redundancy_, faultSlash_);
    }
}
