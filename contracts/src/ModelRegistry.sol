// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Governed} from "./Governed.sol";

/// @title ModelRegistry
/// @notice Records which model bytes exist and who may use them. A model has an owner, an access
///         policy and write-once versions; each version binds the root CID of the model directory
///         (stored as its CIDv1 codec + sha2-256 digest), the sha256 of its manifest, its parent
///         version (lineage), the job that produced it, a licence and a revoked flag. Aliases
///         (`prod`, `canary`, ...) point at versions and can be moved or rolled back.
/// @dev Ids: `modelId = keccak256(bytes(name))`, `versionId = keccak256(abi.encode(modelId,
///      keccak256(bytes(tag))))`. Listing is done from events; views answer point queries.
contract ModelRegistry is Governed {
    /// @notice Who may use a model.
    enum Access {
        Public,
        Allowlist,
        Paid
    }

    /// @notice A registered model.
    struct Model {
        address owner;
        Access access;
        uint128 price;
        uint64 accessPeriod;
    }

    /// @notice A write-once model version (the last four fields share one storage slot).
    struct Version {
        bytes32 cidDigest;
        bytes32 manifestSha256;
        bytes32 parent;
        bytes32 modelId;
        uint64 jobId;
        uint8 cidCodec;
        bool revoked;
        bytes22 license;
    }

    /// @notice Where an alias points, and where it pointed before (for rollback).
    struct Alias {
        bytes32 current;
        bytes32 previous;
    }

    /// @notice Role of the job board, which registers versions produced by jobs.
    bytes32 public constant JOB_BOARD_ROLE = keccak256("JOB_BOARD_ROLE");

    /// @notice CIDv1 codec of a raw block.
    uint8 public constant CODEC_RAW = 0x55;
    /// @notice CIDv1 codec of a dag-pb node.
    uint8 public constant CODEC_DAG_PB = 0x70;

    mapping(bytes32 modelId => Model) private _models;
    mapping(bytes32 versionId => Version) private _versions;
    mapping(bytes32 modelId => mapping(bytes32 aliasHash => Alias)) private _aliases;
    mapping(bytes32 modelId => mapping(address account => uint64 expiry)) private _accessExpiry;
    mapping(bytes32 modelId => bool) private _serversRestricted;
    mapping(bytes32 modelId => mapping(address node => bool)) private _servers;

    /// @notice A model with this id already exists.
    error ModelAlreadyExists(bytes32 modelId);
    /// @notice No model has this id.
    error ModelNotFound(bytes32 modelId);
    /// @notice Only the model's owner may do this.
    error NotModelOwner(bytes32 modelId, address caller);
    /// @notice Model names and version tags are 1..64 bytes.
    error InvalidName();
    /// @notice The version is already registered (versions are write-once).
    error VersionAlreadyExists(bytes32 versionId);
    /// @notice No version has this id.
    error VersionNotFound(bytes32 versionId);
    /// @notice The version was revoked.
    error VersionIsRevoked(bytes32 versionId);
    /// @notice The CID codec is neither raw nor dag-pb, or the digest is zero.
    error InvalidCid(uint8 codec, bytes32 digest);
    /// @notice The manifest hash is zero.
    error InvalidManifestHash();
    /// @notice The alias is not set.
    error AliasNotFound(bytes32 modelId, bytes32 aliasHash);
    /// @notice The alias has no previous target to roll back to.
    error NothingToRollBack(bytes32 modelId, bytes32 aliasHash);
    /// @notice The model is not sold: its access policy is not Paid.
    error NotForSale(bytes32 modelId);
    /// @notice The paid price or period is invalid for the policy.
    error InvalidPricing(uint128 price, uint64 period);
    /// @notice The payment does not equal price times periods.
    error WrongPayment(uint256 expected, uint256 sent);
    /// @notice `account` may not use the model.
    error NoAccess(bytes32 modelId, address account);
    /// @notice Tags starting with `job-` are reserved for versions produced by jobs.
    error ReservedTag(string tag);
    /// @notice The zero address cannot be allowed to serve.
    error InvalidServer(address node);

    /// @notice A model was created.
    event ModelCreated(bytes32 indexed modelId, string name, address indexed owner, Access access);
    /// @notice A model's access policy changed.
    event AccessPolicySet(bytes32 indexed modelId, Access access, uint128 price, uint64 period);
    /// @notice A model changed owner.
    event ModelOwnerChanged(bytes32 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @notice A version was registered.
    event VersionRegistered(
        bytes32 indexed modelId,
        bytes32 indexed versionId,
        string tag,
        uint8 cidCodec,
        bytes32 cidDigest,
        bytes32 manifestSha256,
        bytes32 parent,
        uint64 indexed jobId,
        bytes22 license
    );
    /// @notice A version was revoked.
    event VersionRevoked(bytes32 indexed modelId, bytes32 indexed versionId);
    /// @notice An alias now points at `versionId`; `previous` is where a rollback would move it.
    event AliasSet(bytes32 indexed modelId, bytes32 indexed aliasHash, string name, bytes32 versionId, bytes32 previous);
    /// @notice `account` may use the model until `expiry` (0 = access removed).
    event AccessChanged(bytes32 indexed modelId, address indexed account, uint64 expiry);
    /// @notice Serving the model is now restricted to its allowed nodes (`restricted`) or open to
    ///         every node.
    event ServerRestrictionSet(bytes32 indexed modelId, bool restricted);
    /// @notice `node` is now allowed (or no longer allowed) to serve the model when restricted.
    event ServerSet(bytes32 indexed modelId, address indexed node, bool allowed);

    /// @param admin Initial default admin and pauser.
    /// @param adminTransferDelay Seconds before a pending admin may accept.
    constructor(address admin, uint48 adminTransferDelay) Governed(admin, adminTransferDelay) {}

    modifier onlyModelOwner(bytes32 modelId) {
        address owner = _models[modelId].owner;
        if (owner == address(0)) revert ModelNotFound(modelId);
        if (owner != msg.sender) revert NotModelOwner(modelId, msg.sender);
        _;
    }

    // ------------------------------------------------------------------ models

    /// @notice Create a model owned by the caller.
    /// @param name Unique model name (1..64 bytes).
    /// @param access Access policy.
    /// @param price Price in wei of one access period (Paid only).
    /// @param accessPeriod Seconds of access one purchase buys (Paid only).
    /// @return modelId The id of the new model.
    function createModel(string calldata name, Access access, uint128 price, uint64 accessPeriod)
        external
        whenNotPaused
        returns (bytes32 modelId)
    {
        if (bytes(name).length == 0 || bytes(name).length > 64) revert InvalidName();
        _checkPricing(access, price, accessPeriod);
        modelId = keccak256(bytes(name));
        if (_models[modelId].owner != address(0)) revert ModelAlreadyExists(modelId);
        _models[modelId] = Model(msg.sender, access, price, accessPeriod);
        emit ModelCreated(modelId, name, msg.sender, access);
        emit AccessPolicySet(modelId, access, price, accessPeriod);
    }

    /// @notice Change a model's access policy.
    /// @param modelId The model.
    /// @param access New policy.
    /// @param price Price in wei of one access period (Paid only).
    /// @param accessPeriod Seconds one purchase buys (Paid only).
    function setAccessPolicy(bytes32 modelId, Access access, uint128 price, uint64 accessPeriod)
        external
        whenNotPaused
        onlyModelOwner(modelId)
    {
        _checkPricing(access, price, accessPeriod);
        Model storage m = _models[modelId];
        (m.access, m.price, m.accessPeriod) = (access, price, accessPeriod);
        emit AccessPolicySet(modelId, access, price, accessPeriod);
    }

    /// @notice Hand a model to a new owner.
    /// @param modelId The model.
    /// @param newOwner The new owner (non-zero).
    function transferModel(bytes32 modelId, address newOwner) external whenNotPaused onlyModelOwner(modelId) {
        if (newOwner == address(0)) revert NotModelOwner(modelId, newOwner);
        _models[modelId].owner = newOwner;
        emit ModelOwnerChanged(modelId, msg.sender, newOwner);
    }

    // ---------------------------------------------------------------- versions

    /// @notice Register a new, write-once version of a model the caller owns.
    /// @param modelId The model.
    /// @param tag Version tag (1..64 bytes), unique within the model, not starting with `job-`.
    /// @param cidCodec CIDv1 codec of the root (0x70 dag-pb or 0x55 raw).
    /// @param cidDigest sha2-256 digest of the root block.
    /// @param manifestSha256 sha256 of the version's `anchorml.json` manifest.
    /// @param parent Parent version id, or zero.
    /// @param license Licence identifier (e.g. an SPDX id), UTF-8, right-padded with zeros.
    /// @return versionId The id of the new version.
    function registerVersion(
        bytes32 modelId,
        string calldata tag,
        uint8 cidCodec,
        bytes32 cidDigest,
        bytes32 manifestSha256,
        bytes32 parent,
        bytes22 license
    ) external whenNotPaused onlyModelOwner(modelId) returns (bytes32 versionId) {
        // An owner who took `job-<id>` first could make that job's result unregistrable, so
        // nobody could deliver it and its claimants would be slashed to the owner's profit.
        if (_isJobTag(tag)) revert ReservedTag(tag);
        return _register(modelId, tag, cidCodec, cidDigest, manifestSha256, parent, 0, license);
    }

    /// @notice Register the version a job produced (job board only).
    /// @param modelId The output model, owned by the job's requester.
    /// @param tag Version tag.
    /// @param cidCodec CIDv1 codec of the root.
    /// @param cidDigest sha2-256 digest of the root block.
    /// @param manifestSha256 sha256 of the manifest.
    /// @param parent The job's input version.
    /// @param jobId The producing job.
    /// @return versionId The id of the new version.
    function registerJobVersion(
        bytes32 modelId,
        string calldata tag,
        uint8 cidCodec,
        bytes32 cidDigest,
        bytes32 manifestSha256,
        bytes32 parent,
        uint64 jobId
    ) external whenNotPaused onlyRole(JOB_BOARD_ROLE) returns (bytes32 versionId) {
        if (_models[modelId].owner == address(0)) revert ModelNotFound(modelId);
        return _register(modelId, tag, cidCodec, cidDigest, manifestSha256, parent, jobId, _versions[parent].license);
    }

    /// @notice Revoke a version: it stays on record but must no longer be served.
    /// @param versionId The version.
    function revokeVersion(bytes32 versionId) external whenNotPaused {
        Version storage v = _versions[versionId];
        bytes32 modelId = v.modelId;
        if (modelId == bytes32(0)) revert VersionNotFound(versionId);
        if (_models[modelId].owner != msg.sender) revert NotModelOwner(modelId, msg.sender);
        if (v.revoked) revert VersionIsRevoked(versionId);
        v.revoked = true;
        emit VersionRevoked(modelId, versionId);
    }

    // ----------------------------------------------------------------- aliases

    /// @notice Point an alias at a version of the model (promote).
    /// @param modelId The model.
    /// @param name Alias name (1..64 bytes).
    /// @param versionId A non-revoked version of this model.
    function setAlias(bytes32 modelId, string calldata name, bytes32 versionId)
        external
        whenNotPaused
        onlyModelOwner(modelId)
    {
        if (bytes(name).length == 0 || bytes(name).length > 64) revert InvalidName();
        Version storage v = _versions[versionId];
        if (v.modelId != modelId) revert VersionNotFound(versionId);
        if (v.revoked) revert VersionIsRevoked(versionId);
        bytes32 aliasHash = keccak256(bytes(name));
        Alias storage a = _aliases[modelId][aliasHash];
        bytes32 current = a.current;
        if (current == versionId) {
            // Re-promoting the current target keeps the rollback target.
            emit AliasSet(modelId, aliasHash, name, versionId, a.previous);
            return;
        }
        (a.previous, a.current) = (current, versionId);
        emit AliasSet(modelId, aliasHash, name, versionId, current);
    }

    /// @notice Move an alias back to where it pointed before its last move.
    /// @param modelId The model.
    /// @param name Alias name.
    function rollbackAlias(bytes32 modelId, string calldata name) external whenNotPaused onlyModelOwner(modelId) {
        bytes32 aliasHash = keccak256(bytes(name));
        Alias storage a = _aliases[modelId][aliasHash];
        if (a.current == bytes32(0)) revert AliasNotFound(modelId, aliasHash);
        bytes32 target = a.previous;
        if (target == bytes32(0)) revert NothingToRollBack(modelId, aliasHash);
        if (_versions[target].revoked) revert VersionIsRevoked(target);
        bytes32 from = a.current;
        (a.current, a.previous) = (target, from);
        emit AliasSet(modelId, aliasHash, name, target, from);
    }

    // ------------------------------------------------------------------ access

    /// @notice Allow `account` to use an allowlisted model until `expiry` (0 = no expiry).
    /// @param modelId The model.
    /// @param account The account.
    /// @param expiry Unix time the grant ends, or 0 for no end.
    function grantAccess(bytes32 modelId, address account, uint64 expiry)
        external
        whenNotPaused
        onlyModelOwner(modelId)
    {
        uint64 until = expiry == 0 ? type(uint64).max : expiry;
        _accessExpiry[modelId][account] = until;
        emit AccessChanged(modelId, account, until);
    }

    /// @notice Withdraw `account`'s access to a model.
    /// @param modelId The model.
    /// @param account The account.
    function revokeAccess(bytes32 modelId, address account) external whenNotPaused onlyModelOwner(modelId) {
        delete _accessExpiry[modelId][account];
        emit AccessChanged(modelId, account, 0);
    }

    /// @notice Buy `periods` access periods of a paid model; time adds to any unexpired access.
    ///         The payment is credited to the owner, who withdraws it.
    /// @param modelId The model.
    /// @param periods Number of periods to buy (>= 1).
    function buyAccess(bytes32 modelId, uint32 periods) external payable whenNotPaused {
        Model storage m = _models[modelId];
        if (m.owner == address(0)) revert ModelNotFound(modelId);
        if (m.access != Access.Paid) revert NotForSale(modelId);
        uint256 expected = uint256(m.price) * periods;
        if (periods == 0 || msg.value != expected) revert WrongPayment(expected, msg.value);
        uint64 current = _accessExpiry[modelId][msg.sender];
        uint64 start = current > block.timestamp ? current : uint64(block.timestamp);
        uint64 until = start + m.accessPeriod * periods;
        _accessExpiry[modelId][msg.sender] = until;
        emit AccessChanged(modelId, msg.sender, until);
        _credit(m.owner, msg.value);
    }

    // ----------------------------------------------------------------- serving

    /// @notice Restrict serving the model to the nodes allowed with `setServers`, or open it to
    ///         every node again (the allowed set is kept either way).
    /// @param modelId The model.
    /// @param restricted True to restrict.
    function setServerRestriction(bytes32 modelId, bool restricted) external whenNotPaused onlyModelOwner(modelId) {
        _serversRestricted[modelId] = restricted;
        emit ServerRestrictionSet(modelId, restricted);
    }

    /// @notice Allow (or stop allowing) `nodes` to serve the model while it is restricted.
    /// @param modelId The model.
    /// @param nodes The node addresses (non-zero).
    /// @param allowed True to allow, false to remove.
    function setServers(bytes32 modelId, address[] calldata nodes, bool allowed)
        external
        whenNotPaused
        onlyModelOwner(modelId)
    {
        for (uint256 i; i < nodes.length; ++i) {
            address node = nodes[i];
            if (node == address(0)) revert InvalidServer(node);
            _servers[modelId][node] = allowed;
            emit ServerSet(modelId, node, allowed);
        }
    }

    // ------------------------------------------------------------------- views

    /// @notice Whether `node` may serve the version: it exists, is not revoked, and its model is
    ///         unrestricted or allows `node`.
    /// @param versionId The version.
    /// @param node The node.
    /// @return True if the node may serve it.
    function mayServe(bytes32 versionId, address node) external view returns (bool) {
        Version storage v = _versions[versionId];
        bytes32 modelId = v.modelId;
        if (modelId == bytes32(0) || v.revoked) return false;
        return !_serversRestricted[modelId] || _servers[modelId][node];
    }

    /// @notice Whether serving the model is restricted to its allowed nodes.
    /// @param modelId The model.
    /// @return True if restricted.
    function serversRestricted(bytes32 modelId) external view returns (bool) {
        return _serversRestricted[modelId];
    }

    /// @notice Whether `node` is on the model's allowed servers (used only while restricted).
    /// @param modelId The model.
    /// @param node The node.
    /// @return True if allowed.
    function isServer(bytes32 modelId, address node) external view returns (bool) {
        return _servers[modelId][node];
    }

    /// @notice Whether `account` may use the model now.
    /// @param modelId The model.
    /// @param account The account.
    /// @return True for public models, the owner, and accounts with unexpired access.
    function hasAccess(bytes32 modelId, address account) public view returns (bool) {
        Model storage m = _models[modelId];
        if (m.owner == address(0)) return false;
        if (m.access == Access.Public || m.owner == account) return true;
        return _accessExpiry[modelId][account] > block.timestamp;
    }

    /// @notice Revert with `NoAccess` unless `account` may use the (non-revoked) version.
    /// @param versionId The version.
    /// @param account The account.
    /// @return modelId The version's model.
    function checkVersionAccess(bytes32 versionId, address account) external view returns (bytes32 modelId) {
        modelId = checkVersion(versionId);
        if (!hasAccess(modelId, account)) revert NoAccess(modelId, account);
    }

    /// @notice Revert unless the version exists and is not revoked.
    /// @param versionId The version.
    /// @return modelId The version's model.
    function checkVersion(bytes32 versionId) public view returns (bytes32 modelId) {
        Version storage v = _versions[versionId];
        modelId = v.modelId;
        if (modelId == bytes32(0)) revert VersionNotFound(versionId);
        if (v.revoked) revert VersionIsRevoked(versionId);
    }

    /// @notice Until when `account` holds granted or bought access (0 = none).
    /// @param modelId The model.
    /// @param account The account.
    /// @return expiry Unix time the access ends.
    function accessExpiry(bytes32 modelId, address account) external view returns (uint64 expiry) {
        return _accessExpiry[modelId][account];
    }

    /// @notice A model's record.
    /// @param modelId The model.
    /// @return The model (owner zero if absent).
    function getModel(bytes32 modelId) external view returns (Model memory) {
        return _models[modelId];
    }

    /// @notice A version's record.
    /// @param versionId The version.
    /// @return The version (modelId zero if absent).
    function getVersion(bytes32 versionId) external view returns (Version memory) {
        return _versions[versionId];
    }

    /// @notice Where an alias points now and before.
    /// @param modelId The model.
    /// @param name Alias name.
    /// @return The alias record (zero if unset).
    function getAlias(bytes32 modelId, string calldata name) external view returns (Alias memory) {
        return _aliases[modelId][keccak256(bytes(name))];
    }

    /// @notice The id a version tag of a model has.
    /// @param modelId The model.
    /// @param tag The version tag.
    /// @return The version id.
    function versionIdOf(bytes32 modelId, string calldata tag) public pure returns (bytes32) {
        return keccak256(abi.encode(modelId, keccak256(bytes(tag))));
    }

    // ---------------------------------------------------------------- internal

    function _register(
        bytes32 modelId,
        string calldata tag,
        uint8 cidCodec,
        bytes32 cidDigest,
        bytes32 manifestSha256,
        bytes32 parent,
        uint64 jobId,
        bytes22 license
    ) private returns (bytes32 versionId) {
        if (bytes(tag).length == 0 || bytes(tag).length > 64) revert InvalidName();
        if ((cidCodec != CODEC_RAW && cidCodec != CODEC_DAG_PB) || cidDigest == bytes32(0)) {
            revert InvalidCid(cidCodec, cidDigest);
        }
        if (manifestSha256 == bytes32(0)) revert InvalidManifestHash();
        if (parent != bytes32(0) && _versions[parent].modelId == bytes32(0)) revert VersionNotFound(parent);
        versionId = versionIdOf(modelId, tag);
        Version storage v = _versions[versionId];
        if (v.modelId != bytes32(0)) revert VersionAlreadyExists(versionId);
        v.cidDigest = cidDigest;
        v.manifestSha256 = manifestSha256;
        if (parent != bytes32(0)) v.parent = parent;
        v.modelId = modelId;
        v.jobId = jobId;
        v.cidCodec = cidCodec;
        v.license = license;
        emit VersionRegistered(modelId, versionId, tag, cidCodec, cidDigest, manifestSha256, parent, jobId, license);
    }

    function _isJobTag(string calldata tag) private pure returns (bool) {
        bytes calldata raw = bytes(tag);
        return raw.length >= 4 && raw[0] == "j" && raw[1] == "o" && raw[2] == "b" && raw[3] == "-";
    }

    function _checkPricing(Access access, uint128 price, uint64 period) private pure {
        bool paid = access == Access.Paid;
        if (paid ? (price == 0 || period == 0) : (price != 0 || period != 0)) revert InvalidPricing(price, period);
    }
}
