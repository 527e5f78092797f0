package messaging

import (
	"fmt"
)

// deliveryAttempt returns the attempt of the first handler call of a
// delivery: the broker's delivery count where it reports one, else 1.
//
// A broker's delivery count (transport.Message.DeliveryCount) counts every
// delivery of the message to a consumer of the group, this one included,
// whatever became of the earlier ones: handled and failed, released
// unhandled at a graceful shutdown, or lost with a consumer that crashed.
// Package messaging adds nothing to it when it releases a message: the
// broker's count already includes the release, so one graceful release
// raises the next consumer's attempt by exactly one, and a hard crash
// counts one delivery too. Retries within one delivery add one per call
// (see Subscription.process).
//
// Where the broker reports no count (0), the attempt starts at 1 with each
// delivery: messaging cannot carry a count of its own on a message it
// releases, because a release gives the broker's copy back unchanged, and
// rewriting the message (publishing a copy) would break its key's order.
func deliveryAttempt(deliveryCount int) int {
	return max(1, deliveryCount)
}

// crashLoopError is the failure recorded in the envelope of a message
// dead-lettered because its delivery count passed MaxAttempts before its
// handler was called.
type crashLoopError struct {
	deliveries, maxAttempts int
}

func (e *crashLoopError) Error() string {
	return fmt.Sprintf("switchboard: delivery %d is over MaxAttempts (%d): the consumers of the %d earlier deliveries stopped without settling it (a crash loop?); dead-lettered without calling the handler",
		e.deliveries, e.maxAttempts, e.deliveries-1)
}
