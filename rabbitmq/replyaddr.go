package rabbitmq

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// replyAddrPoison reports whether addr is a direct reply-to address whose
// channel part does not decode. RabbitMQ 3.x encodes the consuming
// channel's Erlang pid there (base64 of the external term format) and
// decodes it with binary_to_term on every publish: a truncated or forged
// term crashes the publishing channel and takes the whole connection down
// (541 INTERNAL_ERROR). Such an address can name no inbox, so a reply to
// it is dropped without publishing. Addresses in another format (other
// broker versions) are published as they are.
func replyAddrPoison(addr string) bool {
	rest, ok := strings.CutPrefix(addr, DirectReplyTo+".")
	if !ok {
		return false
	}
	pidEnc, key, ok := strings.Cut(rest, ".")
	if !ok || pidEnc == "" || key == "" {
		return true
	}
	b, err := base64.StdEncoding.DecodeString(pidEnc)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(pidEnc)
	}
	if err != nil || len(b) == 0 {
		return true
	}
	if b[0] != 131 { // not the Erlang external term format: unknown scheme
		return false
	}
	return !validPidTerm(b[1:])
}

// validPidTerm checks an Erlang PID_EXT or NEW_PID_EXT term exactly.
func validPidTerm(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	tag := b[0]
	if tag != 103 && tag != 88 { // PID_EXT, NEW_PID_EXT
		return false
	}
	b = b[1:]
	var n int
	switch b[0] {
	case 100, 118: // ATOM_EXT, ATOM_UTF8_EXT: 2-byte length
		if len(b) < 3 {
			return false
		}
		n = 3 + int(binary.BigEndian.Uint16(b[1:3]))
	case 115, 119: // SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT: 1-byte length
		if len(b) < 2 {
			return false
		}
		n = 2 + int(b[1])
	default:
		return false
	}
	tail := 9 // ID, Serial, 1-byte Creation
	if tag == 88 {
		tail = 12 // 4-byte Creation
	}
	return len(b) == n+tail
}
