// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Governed
/// @notice Shared base of the anchorml contracts: a two-step-transferable default admin, a pauser
///         role, and pull payments (credits that their owner withdraws; nothing is ever pushed).
/// @dev Invariant kept by every subclass: `address(this).balance` equals the ETH the contract
///      holds for open obligations (escrow, stake) plus the sum of `withdrawable`.
abstract contract Governed is AccessControlDefaultAdminRules, Pausable, ReentrancyGuard {
    /// @notice Role allowed to pause and unpause the contract.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice Amount each account can withdraw.
    mapping(address account => uint256 amount) public withdrawable;

    /// @notice The caller has nothing to withdraw.
    /// @param account The caller.
    error NothingToWithdraw(address account);

    /// @notice Sending ETH to `to` failed.
    /// @param to The recipient.
    /// @param amount The amount that could not be sent.
    error TransferFailed(address to, uint256 amount);

    /// @notice `account` was credited `amount` it can withdraw.
    /// @param account The account credited.
    /// @param amount The amount credited.
    event Credited(address indexed account, uint256 amount);

    /// @notice `account` withdrew `amount`.
    /// @param account The account that withdrew.
    /// @param amount The amount sent.
    event Withdrawn(address indexed account, uint256 amount);

    /// @param admin Initial default admin (also granted PAUSER_ROLE).
    /// @param adminTransferDelay Seconds a pending admin must wait before accepting.
    constructor(address admin, uint48 adminTransferDelay)
        AccessControlDefaultAdminRules(adminTransferDelay, admin)
    {
        _grantRole(PAUSER_ROLE, admin);
    }

    /// @notice Stop state-changing operations (withdrawals keep working).
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resume state-changing operations.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @notice Send the caller everything credited to it. Works while paused.
    function withdraw() external nonReentrant {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        withdrawable[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @dev Credit `amount` to `account` for a later `withdraw`.
    function _credit(address account, uint256 amount) internal {
        if (amount == 0) return;
        withdrawable[account] += amount;
        emit Credited(account, amount);
    }
}
