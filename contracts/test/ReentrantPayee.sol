// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ReentrantPayee
/// @notice Test-only attacker: a requester/payee whose `receive` re-enters a target contract
///         (e.g. `withdraw()` again) to check that reentrancy gains nothing.
contract ReentrantPayee {
    /// @notice Contract the attacker calls and re-enters.
    address public target;
    /// @notice Calldata replayed from `receive`.
    bytes public reentryCall;
    /// @notice How many times `receive` ran.
    uint256 public received;
    /// @notice Whether the last re-entry attempt succeeded.
    bool public reentrySucceeded;

    /// @param target_ The contract to attack.
    constructor(address target_) {
        target = target_;
    }

    /// @notice Call the target with `data` and `msg.value`, arming `reentry` for `receive`.
    /// @param data Calldata for the target.
    /// @param reentry Calldata to replay when paid.
    function attack(bytes calldata data, bytes calldata reentry) external payable {
        reentryCall = reentry;
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    /// @notice Re-enter the target once per payment.
    receive() external payable {
        ++received;
        if (reentryCall.length != 0 && received == 1) {
            (reentrySucceeded,) = target.call(reentryCall);
        }
    }
}
