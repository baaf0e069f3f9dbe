// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Governed} from "./Governed.sol";
import {ModelRegistry} from "./ModelRegistry.sol";
import {NodeRegistry} from "./NodeRegistry.sol";

/// @title JobBoard
/// @notice Training, fine-tuning, evaluation, compression and inference jobs with escrowed
///         rewards. Lifecycle:
///         1. `createJob` escrows the reward (Open).
///         2. Up to `redundancy` staked nodes `claim` it, each holding a lease (Claimed when full).
///         3. k = 1: the claimant `submitResult`s and the job finalizes at once.
///            k > 1: each claimant `commitResult`s a salted hash; once all k committed (Revealing)
///            each `revealResult`s; the job finalizes when all revealed, or via `finalize` after
///            the reveal window. A strict majority of equal outputs wins the reward; dissenters and
///            silent claimants are slashed.
///         4. Nobody delivered by the deadline: `expire` (callable by anyone) refunds the requester.
///         The Challenges contract posts re-execution jobs with `createChallengeJob`: no access
///         check on the version (gated models' answers can be challenged) and one excluded node
///         (the accused signer) that may not claim.
///         A lease that lapses reopens its slot and slashes the lapsed claimant. Model-producing
///         jobs (TRAIN, FINETUNE, COMPRESS) register the result as a new version of the
///         requester's output model, with the input version as parent.
/// @dev All payouts are credits withdrawn with `withdraw`. Invariant:
///      `address(this).balance == Σ reward of unsettled jobs + Σ withdrawable`.
///      Storage keeps commitments, events carry the data (the SDK checks one against the other):
///      `inputHash = keccak256(abi.encode(inputCodec, inputDigest, paramsHash))` with the data in
///      `JobCreated`, and `resultHash = keccak256(abi.encode(codec, digest, outputSha256, size))`
///      with the data in `JobFinalized`.
contract JobBoard is Governed {
    /// @notice Job kinds.
    enum Kind {
        Infer,
        Train,
        Finetune,
        Eval,
        Compress
    }

    /// @notice Job states.
    enum Status {
        None,
        Open,
        Claimed,
        Revealing,
        Finalized,
        Expired,
        Cancelled
    }

    /// @notice State of one claim slot.
    enum ClaimState {
        Free,
        Active,
        Committed,
        Revealed
    }

    /// @notice A job (four storage slots).
    struct Job {
        address requester;
        uint96 reward;
        bytes32 versionId;
        bytes32 inputHash;
        uint40 deadline;
        uint32 leaseSeconds;
        Kind kind;
        Status status;
        uint8 redundancy;
        uint8 claims;
        uint8 commits;
        uint8 reveals;
        uint40 revealDeadline;
    }

    /// @notice One claim slot of a job.
    struct Claim {
        address node;
        uint40 leaseExpiry;
        ClaimState state;
        uint8 codec;
        uint40 size;
        bytes32 commitment;
        bytes32 digest;
        bytes32 sha256;
    }

    /// @notice Parameters a new job must pass.
    struct JobRequest {
        Kind kind;
        bytes32 versionId;
        uint8 inputCodec;
        bytes32 inputDigest;
        bytes32 paramsHash;
        uint40 deadline;
        uint32 leaseSeconds;
        uint8 redundancy;
        bytes32 outputModelId;
    }

    /// @notice Role of the Challenges contract, which posts re-execution jobs that exclude a node.
    bytes32 public constant CHALLENGES_ROLE = keccak256("CHALLENGES_ROLE");

    /// @notice Largest redundancy a job may ask for.
    uint8 public constant MAX_REDUNDANCY = 15;

    /// @notice The model registry (access checks, version registration).
    ModelRegistry public immutable registry;
    /// @notice The node registry (eligibility, slashing).
    NodeRegistry public immutable nodes;

    /// @notice Amount slashed from a node that lapses or dissents.
    uint128 public slashAmount;
    /// @notice Seconds claimants have to reveal once all committed.
    uint32 public revealWindow;
    /// @notice Id of the last job created.
    uint64 public lastJobId;

    mapping(uint64 jobId => Job) private _jobs;
    mapping(uint64 jobId => mapping(uint256 slot => Claim)) private _claims;
    mapping(uint64 jobId => bytes32 resultHash) private _resultHashes;
    mapping(uint64 jobId => bytes32 modelId) private _outputModel;
    /// @notice The node that may not claim a job (a challenge job's accused signer; zero = none).
    mapping(uint64 jobId => address node) public excludedOf;

    /// @notice No job has this id.
    error JobNotFound(uint64 jobId);
    /// @notice The job is not in a state that allows this.
    error InvalidJobStatus(uint64 jobId, Status status);
    /// @notice The reward must be non-zero and fit in 96 bits.
    error InvalidReward(uint256 reward);
    /// @notice Deadline, lease or redundancy out of range.
    error InvalidJobTiming(uint40 deadline, uint32 leaseSeconds, uint8 redundancy);
    /// @notice Model-producing jobs need an output model the requester owns; others must not name one.
    error InvalidOutputModel(bytes32 modelId);
    /// @notice The input CID codec is neither raw nor dag-pb.
    error InvalidInput(uint8 codec);
    /// @notice The node may not take jobs (not registered, stake too low, or leaving).
    error NodeNotEligible(address node);
    /// @notice Every claim slot is held by an unexpired lease.
    error LeaseActive(uint64 jobId, address holder, uint40 leaseExpiry);
    /// @notice The node may not claim this job (it is the accused of the challenge it re-executes).
    error NodeExcluded(uint64 jobId, address node);
    /// @notice The node already holds a claim on this job.
    error AlreadyClaimed(uint64 jobId, address node);
    /// @notice The caller holds no active claim on this job.
    error NotClaimant(uint64 jobId, address caller);
    /// @notice The job's deadline passed.
    error DeadlinePassed(uint64 jobId, uint40 deadline);
    /// @notice The job's deadline has not passed yet.
    error DeadlineNotReached(uint64 jobId, uint40 deadline);
    /// @notice Only the requester may do this.
    error NotRequester(uint64 jobId, address caller);
    /// @notice The operation needs redundancy 1 (submit) or > 1 (commit/reveal).
    error WrongRedundancyMode(uint64 jobId, uint8 redundancy);
    /// @notice A reveal does not match the caller's commitment.
    error CommitmentMismatch(uint64 jobId, address node);
    /// @notice The reveal window is over, or not yet over.
    error RevealWindow(uint64 jobId, uint40 revealDeadline);
    /// @notice The result is malformed (zero hash or bad codec).
    error InvalidResult();
    /// @notice The job board's parameters are invalid.
    error InvalidParams();

    /// @notice A job was created; its input is `inputCodec`/`inputDigest` with `paramsHash`.
    event JobCreated(
        uint64 indexed jobId,
        address indexed requester,
        bytes32 indexed versionId,
        Kind kind,
        uint8 inputCodec,
        bytes32 inputDigest,
        bytes32 paramsHash,
        uint96 reward,
        uint40 deadline,
        uint32 leaseSeconds,
        uint8 redundancy,
        bytes32 outputModelId
    );
    /// @notice `node` may not claim the job (a challenge job naming its accused).
    event ClaimantExcluded(uint64 indexed jobId, address indexed node);
    /// @notice `node` claimed the job until `leaseExpiry`.
    event JobClaimed(uint64 indexed jobId, address indexed node, uint40 leaseExpiry);
    /// @notice `node` gave up its claim (`lapsed` when its lease ran out, and it was slashed).
    event ClaimReleased(uint64 indexed jobId, address indexed node, bool lapsed);
    /// @notice `node` committed to a result.
    event ResultCommitted(uint64 indexed jobId, address indexed node, bytes32 commitment);
    /// @notice `node` revealed its result.
    event ResultRevealed(uint64 indexed jobId, address indexed node, uint8 codec, bytes32 digest, bytes32 sha256, uint40 size);
    /// @notice The job finalized with this result, delivered by `agreeing` nodes who share `reward`.
    event JobFinalized(uint64 indexed jobId, uint8 codec, bytes32 digest, bytes32 sha256, uint40 size, uint8 agreeing, uint96 reward);
    /// @notice The job ended without an accepted result; `refund` was credited to the requester.
    event JobExpired(uint64 indexed jobId, uint96 refund);
    /// @notice The requester cancelled the open job and was refunded.
    event JobCancelled(uint64 indexed jobId);
    /// @notice Parameters changed.
    event ParamsSet(uint128 slashAmount, uint32 revealWindow);

    /// @param admin Initial default admin and pauser.
    /// @param adminTransferDelay Seconds before a pending admin may accept.
    /// @param registry_ The model registry.
    /// @param nodes_ The node registry.
    /// @param slashAmount_ Amount slashed per failure.
    /// @param revealWindow_ Seconds for reveals after the last commit.
    constructor(
        address admin,
        uint48 adminTransferDelay,
        ModelRegistry registry_,
        NodeRegistry nodes_,
        uint128 slashAmount_,
        uint32 revealWindow_
    ) Governed(admin, adminTransferDelay) {
        if (revealWindow_ == 0) revert InvalidParams();
        (registry, nodes) = (registry_, nodes_);
        (slashAmount, revealWindow) = (slashAmount_, revealWindow_);
        emit ParamsSet(slashAmount_, revealWindow_);
    }

    // ----------------------------------------------------------------- requester

    /// @notice Post a job, escrowing `msg.value` as its reward. The caller must have access to the
    ///         model version (the registry's `NoAccess` error otherwise).
    /// @param r The job request.
    /// @return jobId The new job's id.
    function createJob(JobRequest calldata r) external payable whenNotPaused returns (uint64 jobId) {
        return _createJob(r, true);
    }

    /// @notice Post a challenge's re-execution job that `excluded` may not claim (Challenges
    ///         contract only). The version must exist and not be revoked, but its access policy
    ///         does not apply: a gated model's answers can be challenged too.
    /// @param r The job request.
    /// @param excluded The accused node.
    /// @return jobId The new job's id.
    function createChallengeJob(JobRequest calldata r, address excluded)
        external
        payable
        whenNotPaused
        onlyRole(CHALLENGES_ROLE)
        returns (uint64 jobId)
    {
        jobId = _createJob(r, false);
        excludedOf[jobId] = excluded;
        emit ClaimantExcluded(jobId, excluded);
    }

    /// @notice Cancel an open job nobody holds a claim on; the reward is credited back.
    /// @param jobId The job.
    function cancelJob(uint64 jobId) external {
        Job storage j = _job(jobId);
        if (j.requester != msg.sender) revert NotRequester(jobId, msg.sender);
        if (j.status != Status.Open || j.claims != 0) revert InvalidJobStatus(jobId, j.status);
        j.status = Status.Cancelled;
        emit JobCancelled(jobId);
        _credit(msg.sender, j.reward);
    }

    /// @notice After the deadline, settle a job nobody delivered: refund the requester and slash
    ///         claimants that held a lease without committing or delivering. Anyone may call it.
    /// @param jobId The job.
    function expire(uint64 jobId) external {
        Job storage j = _job(jobId);
        Status s = j.status;
        if (s != Status.Open && s != Status.Claimed) revert InvalidJobStatus(jobId, s);
        if (block.timestamp < j.deadline) revert DeadlineNotReached(jobId, j.deadline);
        j.status = Status.Expired;
        emit JobExpired(jobId, j.reward);
        for (uint256 i; i < j.redundancy; ++i) {
            Claim storage c = _claims[jobId][i];
            if (c.state == ClaimState.Active) _slash(jobId, c.node, j.requester);
        }
        _credit(j.requester, j.reward);
    }

    // ---------------------------------------------------------------------- node

    /// @notice Claim a slot of the job. A slot whose lease lapsed is taken over and its holder
    ///         slashed. Only eligible (staked) nodes may claim.
    /// @param jobId The job.
    /// @return leaseExpiry When the caller's lease ends.
    function claim(uint64 jobId) external whenNotPaused returns (uint40 leaseExpiry) {
        Job storage j = _job(jobId);
        Status s = j.status;
        if (s != Status.Open && s != Status.Claimed) revert InvalidJobStatus(jobId, s);
        if (block.timestamp >= j.deadline) revert DeadlinePassed(jobId, j.deadline);
        if (!nodes.isEligible(msg.sender)) revert NodeNotEligible(msg.sender);
        if (excludedOf[jobId] == msg.sender) revert NodeExcluded(jobId, msg.sender);
        // Taking over a lapsed slot calls the immutable NodeRegistry's `slash`, which makes no
        // external call, so nothing can re-enter before the slot is written below.
        // slither-disable-next-line reentrancy-no-eth
        uint256 slot = _takeSlot(jobId, j);
        uint256 leaseEnd = block.timestamp + j.leaseSeconds;
        leaseExpiry = uint40(leaseEnd < j.deadline ? leaseEnd : j.deadline);
        Claim storage c = _claims[jobId][slot];
        (c.node, c.leaseExpiry, c.state) = (msg.sender, leaseExpiry, ClaimState.Active);
        if (++j.claims == j.redundancy) j.status = Status.Claimed;
        emit JobClaimed(jobId, msg.sender, leaseExpiry);
    }

    /// @notice Give a claim back before delivering (no slash while the lease is still running).
    /// @param jobId The job.
    function releaseClaim(uint64 jobId) external {
        Job storage j = _job(jobId);
        if (j.status != Status.Open && j.status != Status.Claimed) revert InvalidJobStatus(jobId, j.status);
        (uint256 slot, Claim storage c) = _activeClaim(jobId, j, msg.sender);
        if (c.state != ClaimState.Active) revert NotClaimant(jobId, msg.sender);
        _freeSlot(jobId, j, slot, false);
    }

    /// @notice Reopen every slot whose lease lapsed, slashing its holder. Anyone may call it.
    /// @param jobId The job.
    /// @return reopened How many slots were reopened.
    function reclaimLapsed(uint64 jobId) external returns (uint256 reopened) {
        Job storage j = _job(jobId);
        if (j.status != Status.Open && j.status != Status.Claimed) revert InvalidJobStatus(jobId, j.status);
        address holder = address(0);
        uint40 holderExpiry = 0;
        for (uint256 i; i < j.redundancy; ++i) {
            Claim storage c = _claims[jobId][i];
            if (c.state != ClaimState.Active) continue;
            if (block.timestamp >= c.leaseExpiry) {
                _freeSlot(jobId, j, i, true);
                ++reopened;
            } else if (holder == address(0)) {
                (holder, holderExpiry) = (c.node, c.leaseExpiry);
            }
        }
        // Name the first running lease (zero when no slot holds one), not whatever is in slot 0.
        if (reopened == 0) revert LeaseActive(jobId, holder, holderExpiry);
    }

    /// @notice Deliver the result of a redundancy-1 job; the job finalizes and the reward is
    ///         credited to the caller.
    /// @param jobId The job.
    /// @param codec CIDv1 codec of the output root.
    /// @param digest sha2-256 digest of the output root block.
    /// @param outputSha256 sha256 of the output (the manifest for model-producing jobs).
    /// @param size Output size in bytes.
    function submitResult(uint64 jobId, uint8 codec, bytes32 digest, bytes32 outputSha256, uint40 size)
        external
        whenNotPaused
    {
        Job storage j = _job(jobId);
        if (j.redundancy != 1) revert WrongRedundancyMode(jobId, j.redundancy);
        // A settled job keeps its claimant's slot: without this check a repeat submit would be
        // paid again out of other jobs' escrow.
        if (j.status != Status.Open && j.status != Status.Claimed) revert InvalidJobStatus(jobId, j.status);
        (, Claim storage c) = _activeClaim(jobId, j, msg.sender);
        if (c.state != ClaimState.Active) revert NotClaimant(jobId, msg.sender);
        _checkResult(codec, digest, outputSha256);
        c.state = ClaimState.Revealed; // delivered: the slot can no longer be released or reused
        _finalize(jobId, j, codec, digest, outputSha256, size, 1);
        _credit(msg.sender, j.reward);
    }

    /// @notice Commit to a result of a redundancy-k job: `commitment = keccak256(abi.encode(jobId,
    ///         node, codec, digest, outputSha256, size, salt))`.
    /// @param jobId The job.
    /// @param commitment The salted result hash.
    function commitResult(uint64 jobId, bytes32 commitment) external whenNotPaused {
        Job storage j = _job(jobId);
        if (j.redundancy == 1) revert WrongRedundancyMode(jobId, 1);
        (, Claim storage c) = _activeClaim(jobId, j, msg.sender);
        if (c.state != ClaimState.Active) revert NotClaimant(jobId, msg.sender);
        (c.state, c.commitment) = (ClaimState.Committed, commitment);
        emit ResultCommitted(jobId, msg.sender, commitment);
        if (++j.commits == j.redundancy) {
            (j.status, j.revealDeadline) = (Status.Revealing, uint40(block.timestamp + revealWindow));
        }
    }

    /// @notice Reveal a committed result (only once every claimant has committed).
    /// @param jobId The job.
    /// @param codec CIDv1 codec of the output root.
    /// @param digest sha2-256 digest of the output root block.
    /// @param outputSha256 sha256 of the output.
    /// @param size Output size in bytes.
    /// @param salt The salt used in the commitment.
    function revealResult(uint64 jobId, uint8 codec, bytes32 digest, bytes32 outputSha256, uint40 size, bytes32 salt)
        external
        whenNotPaused
    {
        Job storage j = _job(jobId);
        if (j.status != Status.Revealing) revert InvalidJobStatus(jobId, j.status);
        if (block.timestamp >= j.revealDeadline) revert RevealWindow(jobId, j.revealDeadline);
        (, Claim storage c) = _activeClaim(jobId, j, msg.sender);
        if (c.state != ClaimState.Committed) revert NotClaimant(jobId, msg.sender);
        bytes32 expected = keccak256(abi.encode(jobId, msg.sender, codec, digest, outputSha256, size, salt));
        if (expected != c.commitment) revert CommitmentMismatch(jobId, msg.sender);
        _checkResult(codec, digest, outputSha256);
        (c.state, c.codec, c.size, c.digest, c.sha256) = (ClaimState.Revealed, codec, size, digest, outputSha256);
        emit ResultRevealed(jobId, msg.sender, codec, digest, outputSha256, size);
        if (++j.reveals == j.redundancy) _settleMajority(jobId, j);
    }

    /// @notice Settle a redundancy-k job after its reveal window closed. Anyone may call it.
    /// @param jobId The job.
    function finalize(uint64 jobId) external {
        Job storage j = _job(jobId);
        if (j.status != Status.Revealing) revert InvalidJobStatus(jobId, j.status);
        if (block.timestamp < j.revealDeadline) revert RevealWindow(jobId, j.revealDeadline);
        _settleMajority(jobId, j);
    }

    /// @notice Change the slash amount and reveal window (admin only).
    /// @param slashAmount_ New slash amount.
    /// @param revealWindow_ New reveal window in seconds (non-zero).
    function setParams(uint128 slashAmount_, uint32 revealWindow_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (revealWindow_ == 0) revert InvalidParams();
        (slashAmount, revealWindow) = (slashAmount_, revealWindow_);
        emit ParamsSet(slashAmount_, revealWindow_);
    }

    // --------------------------------------------------------------------- views

    /// @notice A job's record.
    /// @param jobId The job.
    /// @return The job (status None if absent).
    function getJob(uint64 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @notice One claim slot of a job.
    /// @param jobId The job.
    /// @param slot Slot index (< redundancy).
    /// @return The claim.
    function getClaim(uint64 jobId, uint256 slot) external view returns (Claim memory) {
        return _claims[jobId][slot];
    }

    /// @notice Commitment to the accepted result of a finalized job (its data is in `JobFinalized`).
    /// @param jobId The job.
    /// @return `keccak256(abi.encode(codec, digest, outputSha256, size))`, zero until finalized.
    function resultHashOf(uint64 jobId) external view returns (bytes32) {
        return _resultHashes[jobId];
    }

    /// @notice The model a model-producing job registers its output under.
    /// @param jobId The job.
    /// @return The output model id (zero for other kinds).
    function outputModelOf(uint64 jobId) external view returns (bytes32) {
        return _outputModel[jobId];
    }

    // ------------------------------------------------------------------ internal

    /// @dev Validate `r` (with the caller's access to the version when `checkAccess`), escrow
    ///      `msg.value` and record the job.
    function _createJob(JobRequest calldata r, bool checkAccess) private returns (uint64 jobId) {
        if (msg.value == 0 || msg.value > type(uint96).max) revert InvalidReward(msg.value);
        if (
            r.deadline <= block.timestamp || r.leaseSeconds == 0 || r.redundancy == 0
                || r.redundancy > MAX_REDUNDANCY
        ) revert InvalidJobTiming(r.deadline, r.leaseSeconds, r.redundancy);
        if (r.inputCodec != 0x55 && r.inputCodec != 0x70) revert InvalidInput(r.inputCodec);
        if (checkAccess) {
            // Called for its revert (`NoAccess`, unknown or revoked version); the model id is not
            // needed.
            // slither-disable-next-line unused-return
            registry.checkVersionAccess(r.versionId, msg.sender);
        } else {
            // Called for its revert (unknown or revoked version; access is not checked: answers of
            // gated models can be challenged too); the model id is not needed.
            // slither-disable-next-line unused-return
            registry.checkVersion(r.versionId);
        }
        bool producesModel = _producesModel(r.kind);
        if (producesModel) {
            if (registry.getModel(r.outputModelId).owner != msg.sender) revert InvalidOutputModel(r.outputModelId);
        } else if (r.outputModelId != bytes32(0)) {
            revert InvalidOutputModel(r.outputModelId);
        }
        jobId = ++lastJobId;
        Job storage j = _jobs[jobId];
        (j.requester, j.reward, j.versionId) = (msg.sender, uint96(msg.value), r.versionId);
        j.inputHash = keccak256(abi.encode(r.inputCodec, r.inputDigest, r.paramsHash));
        (j.deadline, j.leaseSeconds, j.kind, j.status, j.redundancy) =
            (r.deadline, r.leaseSeconds, r.kind, Status.Open, r.redundancy);
        if (producesModel) _outputModel[jobId] = r.outputModelId;
        _emitJobCreated(jobId, r);
    }

    function _job(uint64 jobId) private view returns (Job storage j) {
        j = _jobs[jobId];
        if (j.status == Status.None) revert JobNotFound(jobId);
    }

    /// @dev The caller's non-free claim slot, whose lease (or reveal phase) still runs.
    function _activeClaim(uint64 jobId, Job storage j, address node) private view returns (uint256, Claim storage) {
        for (uint256 slot = 0; slot < j.redundancy; ++slot) {
            Claim storage c = _claims[jobId][slot];
            if (c.node == node && c.state != ClaimState.Free) {
                if (c.state == ClaimState.Active && block.timestamp >= c.leaseExpiry) break;
                return (slot, c);
            }
        }
        revert NotClaimant(jobId, node);
    }

    /// @dev Find a free slot for the caller, taking over one whose lease lapsed.
    function _takeSlot(uint64 jobId, Job storage j) private returns (uint256) {
        uint256 free = type(uint256).max;
        uint256 lapsed = type(uint256).max;
        address holder = address(0);
        uint40 holderExpiry = 0;
        for (uint256 i; i < j.redundancy; ++i) {
            Claim storage c = _claims[jobId][i];
            ClaimState state = c.state;
            if (state == ClaimState.Free) {
                if (free == type(uint256).max) free = i;
                continue;
            }
            if (c.node == msg.sender) revert AlreadyClaimed(jobId, msg.sender);
            if (state == ClaimState.Active) {
                if (block.timestamp >= c.leaseExpiry) {
                    if (lapsed == type(uint256).max) lapsed = i;
                } else if (holder == address(0)) {
                    (holder, holderExpiry) = (c.node, c.leaseExpiry);
                }
            }
        }
        if (free != type(uint256).max) return free;
        if (lapsed == type(uint256).max) revert LeaseActive(jobId, holder, holderExpiry);
        _freeSlot(jobId, j, lapsed, true);
        return lapsed;
    }

    function _freeSlot(uint64 jobId, Job storage j, uint256 slot, bool lapsed) private {
        Claim storage c = _claims[jobId][slot];
        address node = c.node;
        delete _claims[jobId][slot];
        --j.claims;
        j.status = Status.Open;
        emit ClaimReleased(jobId, node, lapsed);
        if (lapsed) _slash(jobId, node, j.requester);
    }

    /// @dev Pay the strict majority of equal revealed outputs; slash everyone else. Without a
    ///      majority the requester is refunded and only silent claimants are slashed.
    function _settleMajority(uint64 jobId, Job storage j) private {
        uint8 k = j.redundancy;
        uint256 best = 0;
        uint256 bestVotes = 0;
        for (uint256 i; i < k; ++i) {
            Claim storage a = _claims[jobId][i];
            if (a.state != ClaimState.Revealed) continue;
            uint256 votes = 0;
            for (uint256 m; m < k; ++m) {
                if (_sameOutput(a, _claims[jobId][m])) ++votes;
            }
            if (votes > bestVotes) (best, bestVotes) = (i, votes);
        }
        address requester = j.requester;
        if (bestVotes * 2 <= k) {
            j.status = Status.Expired;
            emit JobExpired(jobId, j.reward);
            for (uint256 i; i < k; ++i) {
                if (_claims[jobId][i].state != ClaimState.Revealed) _slash(jobId, _claims[jobId][i].node, requester);
            }
            _credit(requester, j.reward);
            return;
        }
        Claim storage w = _claims[jobId][best];
        // The status is final before any external call, and the callees (the immutable
        // ModelRegistry and NodeRegistry) make none, so the credits below cannot be re-entered.
        // slither-disable-next-line reentrancy-no-eth
        _finalize(jobId, j, w.codec, w.digest, w.sha256, w.size, uint8(bestVotes));
        uint96 share = j.reward / uint96(bestVotes);
        for (uint256 i; i < k; ++i) {
            Claim storage c = _claims[jobId][i];
            if (_sameOutput(w, c)) _credit(c.node, share);
            else _slash(jobId, c.node, requester);
        }
        // Intended: the remainder the integer division leaves goes back to the requester.
        // slither-disable-next-line divide-before-multiply
        _credit(requester, j.reward - share * uint96(bestVotes));
    }

    function _finalize(
        uint64 jobId,
        Job storage j,
        uint8 codec,
        bytes32 digest,
        bytes32 outputSha256,
        uint40 size,
        uint8 agreeing
    ) private {
        j.status = Status.Finalized;
        _resultHashes[jobId] = keccak256(abi.encode(codec, digest, outputSha256, size));
        emit JobFinalized(jobId, codec, digest, outputSha256, size, agreeing, j.reward);
        if (!_producesModel(j.kind)) return;
        // The new version's id is not needed here: the registry emits it in `VersionRegistered`.
        // slither-disable-next-line unused-return
        registry.registerJobVersion(
            _outputModel[jobId], string.concat("job-", _decimal(jobId)), codec, digest, outputSha256, j.versionId, jobId
        );
    }

    /// @dev A function of its own: inline, the event's twelve fields overflow the legacy code
    ///      generator's stack (slither compiles without via-IR).
    function _emitJobCreated(uint64 jobId, JobRequest calldata r) private {
        emit JobCreated(
            jobId,
            msg.sender,
            r.versionId,
            r.kind,
            r.inputCodec,
            r.inputDigest,
            r.paramsHash,
            uint96(msg.value),
            r.deadline,
            r.leaseSeconds,
            r.redundancy,
            r.outputModelId
        );
    }

    function _producesModel(Kind kind) private pure returns (bool) {
        return kind == Kind.Train || kind == Kind.Finetune || kind == Kind.Compress;
    }

    function _slash(uint64 jobId, address node, address beneficiary) private {
        // The amount actually slashed is not needed here: the registry emits it in `Slashed`.
        // slither-disable-next-line unused-return
        if (slashAmount != 0) nodes.slash(node, slashAmount, beneficiary, jobId);
    }

    function _sameOutput(Claim storage a, Claim storage b) private view returns (bool) {
        return b.state == ClaimState.Revealed && a.digest == b.digest && a.sha256 == b.sha256 && a.codec == b.codec
            && a.size == b.size;
    }

    function _checkResult(uint8 codec, bytes32 digest, bytes32 outputSha256) private pure {
        if ((codec != 0x55 && codec != 0x70) || digest == bytes32(0) || outputSha256 == bytes32(0)) {
            revert InvalidResult();
        }
    }

    /// @dev Decimal text of `value` (OpenZeppelin's Strings needs `mcopy`, which shanghai lacks).
    function _decimal(uint64 value) private pure returns (string memory text) {
        uint256 digits = 1;
        for (uint64 v = value / 10; v != 0; v /= 10) ++digits;
        bytes memory buf = new bytes(digits);
        for (uint256 i = digits; i != 0; value /= 10) buf[--i] = bytes1(uint8(48 + value % 10));
        return string(buf);
    }
}
