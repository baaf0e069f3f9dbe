// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Governed} from "./Governed.sol";

/// @title NodeRegistry
/// @notice Worker nodes stake ETH, declare an endpoint URL, a public key and the model versions
///         they serve. Leaving takes two steps: `requestUnstake` stops new work at once, and
///         `withdrawStake` returns the stake after `unstakeDelay`. The job board and the Challenges
///         contract may slash a node; slashed ETH is credited (pull payment) to the beneficiary
///         the slasher names.
/// @dev Invariant: `address(this).balance == Σ stake + Σ withdrawable`.
contract NodeRegistry is Governed {
    /// @notice A worker node's record.
    struct Node {
        uint128 stake;
        uint64 unlockAt;
        uint32 slashCount;
        bool registered;
        string endpoint;
        bytes publicKey;
    }

    /// @notice Role of the contracts that may slash nodes (the job board, the Challenges contract).
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");

    /// @notice Minimum stake for a node to take jobs.
    uint128 public minStake;
    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    uint64 public unstakeDelay;

    mapping(address node => Node) private _nodes;
    mapping(address node => mapping(bytes32 versionId => bool)) private _serves;

    /// @notice The stake would stay below `minStake`.
    error InsufficientStake(uint256 stake, uint256 minStake);
    /// @notice The node is not registered.
    error NodeNotRegistered(address node);
    /// @notice The node is leaving (unstake requested) and cannot do this.
    error NodeExiting(address node, uint64 unlockAt);
    /// @notice `withdrawStake` before the delay passed, or without a request.
    error StakeLocked(address node, uint64 unlockAt);
    /// @notice Endpoint must be 1..256 bytes and public key 1..128 bytes.
    error InvalidNodeInfo();

    /// @notice A node registered or updated its endpoint and key.
    event NodeRegistered(address indexed node, string endpoint, bytes publicKey);
    /// @notice A node's stake changed.
    event StakeChanged(address indexed node, uint256 stake);
    /// @notice A node started leaving; its stake unlocks at `unlockAt`.
    event UnstakeRequested(address indexed node, uint64 unlockAt);
    /// @notice A node starts or stops serving a model version.
    event ServingChanged(address indexed node, bytes32 indexed versionId, bool serving);
    /// @notice A node was slashed `amount`, credited to `beneficiary`.
    event Slashed(address indexed node, uint256 amount, address indexed beneficiary, uint64 indexed jobId);
    /// @notice Staking parameters changed.
    event ParamsSet(uint128 minStake, uint64 unstakeDelay);

    /// @param admin Initial default admin and pauser.
    /// @param adminTransferDelay Seconds before a pending admin may accept.
    /// @param minStake_ Minimum stake for a node to take jobs.
    /// @param unstakeDelay_ Seconds between unstake request and withdrawal.
    constructor(address admin, uint48 adminTransferDelay, uint128 minStake_, uint64 unstakeDelay_)
        Governed(admin, adminTransferDelay)
    {
        (minStake, unstakeDelay) = (minStake_, unstakeDelay_);
        emit ParamsSet(minStake_, unstakeDelay_);
    }

    /// @notice Register (or update) the caller as a node and add `msg.value` to its stake.
    /// @param endpoint URL of the node's HTTP endpoint.
    /// @param publicKey The node's public key (e.g. secp256k1, uncompressed or compressed).
    function register(string calldata endpoint, bytes calldata publicKey) external payable whenNotPaused {
        uint256 endpointLength = bytes(endpoint).length;
        if (endpointLength == 0 || endpointLength > 256 || publicKey.length == 0 || publicKey.length > 128) {
            revert InvalidNodeInfo();
        }
        Node storage n = _nodes[msg.sender];
        if (n.unlockAt != 0) revert NodeExiting(msg.sender, n.unlockAt);
        uint256 stake = n.stake + msg.value;
        if (stake < minStake) revert InsufficientStake(stake, minStake);
        (n.registered, n.endpoint, n.publicKey) = (true, endpoint, publicKey);
        emit NodeRegistered(msg.sender, endpoint, publicKey);
        if (msg.value != 0) {
            n.stake = uint128(stake);
            emit StakeChanged(msg.sender, stake);
        }
    }

    /// @notice Add `msg.value` to the caller's stake.
    function addStake() external payable whenNotPaused {
        Node storage n = _nodes[msg.sender];
        if (!n.registered) revert NodeNotRegistered(msg.sender);
        if (n.unlockAt != 0) revert NodeExiting(msg.sender, n.unlockAt);
        n.stake += uint128(msg.value);
        emit StakeChanged(msg.sender, n.stake);
    }

    /// @notice Declare which model versions the caller serves.
    /// @param versionIds The versions.
    /// @param serving True to start serving them, false to stop.
    function setServing(bytes32[] calldata versionIds, bool serving) external whenNotPaused {
        if (!_nodes[msg.sender].registered) revert NodeNotRegistered(msg.sender);
        for (uint256 i; i < versionIds.length; ++i) {
            _serves[msg.sender][versionIds[i]] = serving;
            emit ServingChanged(msg.sender, versionIds[i], serving);
        }
    }

    /// @notice Stop taking jobs and start the unstake delay.
    function requestUnstake() external {
        Node storage n = _nodes[msg.sender];
        if (!n.registered) revert NodeNotRegistered(msg.sender);
        if (n.unlockAt != 0) revert NodeExiting(msg.sender, n.unlockAt);
        uint64 unlockAt = uint64(block.timestamp) + unstakeDelay;
        n.unlockAt = unlockAt;
        emit UnstakeRequested(msg.sender, unlockAt);
    }

    /// @notice After the delay, credit the whole stake for withdrawal and deregister.
    function withdrawStake() external {
        Node storage n = _nodes[msg.sender];
        uint64 unlockAt = n.unlockAt;
        if (unlockAt == 0 || block.timestamp < unlockAt) revert StakeLocked(msg.sender, unlockAt);
        uint256 stake = n.stake;
        (n.stake, n.unlockAt, n.registered) = (0, 0, false);
        emit StakeChanged(msg.sender, 0);
        _credit(msg.sender, stake);
    }

    /// @notice Take up to `amount` of a node's stake and credit it to `beneficiary` (slashers only).
    /// @param node The node.
    /// @param amount Amount to slash (capped at the stake).
    /// @param beneficiary Who receives the slashed ETH.
    /// @param jobId The job the node failed (for the Challenges contract: the re-execution job).
    /// @return slashed The amount actually taken.
    function slash(address node, uint256 amount, address beneficiary, uint64 jobId)
        external
        onlyRole(SLASHER_ROLE)
        returns (uint256 slashed)
    {
        Node storage n = _nodes[node];
        slashed = amount < n.stake ? amount : n.stake;
        n.stake -= uint128(slashed);
        ++n.slashCount;
        emit Slashed(node, slashed, beneficiary, jobId);
        _credit(beneficiary, slashed);
    }

    /// @notice Change the staking parameters (admin only).
    /// @param minStake_ New minimum stake.
    /// @param unstakeDelay_ New unstake delay in seconds.
    function setParams(uint128 minStake_, uint64 unstakeDelay_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        (minStake, unstakeDelay) = (minStake_, unstakeDelay_);
        emit ParamsSet(minStake_, unstakeDelay_);
    }

    /// @notice Whether `node` may take jobs now: registered, staked at least `minStake`, not leaving.
    /// @param node The node.
    /// @return True if eligible.
    function isEligible(address node) external view returns (bool) {
        Node storage n = _nodes[node];
        return n.registered && n.unlockAt == 0 && n.stake >= minStake;
    }

    /// @notice Whether `node` declared it serves `versionId`.
    /// @param node The node.
    /// @param versionId The version.
    /// @return True if serving.
    function serves(address node, bytes32 versionId) external view returns (bool) {
        return _serves[node][versionId];
    }

    /// @notice A node's record.
    /// @param node The node.
    /// @return The record (registered false if absent).
    function getNode(address node) external view returns (Node memory) {
        return _nodes[node];
    }
}
