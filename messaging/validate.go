package messaging

import (
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// ValidateTopic checks a topic name as Publish does: it returns an error
// matching ErrInvalid for an empty name, one over MaxNameLength bytes, or
// one with characters outside [A-Za-z0-9._-] (or not starting with a
// letter or digit). For code that stores messages to send them later, such
// as a transactional outbox.
func ValidateTopic(name string) error { return validName("topic", name) }

// ValidateRecipient checks a recipient (queue) name as Notify does.
func ValidateRecipient(name string) error { return validName("recipient", name) }

// Validate checks m as Publish and Notify do before sending, without
// sending it: an error matching ErrInvalid for a nil message or a bad
// header, ErrMessageTooLarge for a message over the limits of c's
// transport (Capabilities.MaxMessageSize, MaxHeaders) or MaxHeadersSize.
// An empty ID counts as a generated one (36 bytes). It never modifies m.
func (c *Client) Validate(m *Message) error {
	var tm transport.Message
	return c.prepareInto(&tm, m, time.Now())
}
