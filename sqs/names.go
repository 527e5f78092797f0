package sqs

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Amazon SQS queue names and SNS topic names allow only [A-Za-z0-9_-], at
// most 80 characters, ".fifo" included for FIFO queues and topics.
const maxNameLen = 80

const fifoSuffix = ".fifo"

// escapeName maps a Switchboard name to [A-Za-z0-9_-] injectively:
// letters, digits and '-' stay; '.' becomes "_d"; '_' becomes "_u"; any
// other byte becomes '_' followed by two upper-case hex digits. An
// encoded name never contains "_S", "_R" or "_Z", which this file uses as
// separators and markers.
func escapeName(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '.':
			b.WriteString("_d")
		case c == '_':
			b.WriteString("_u")
		default:
			const hexd = "0123456789ABCDEF"
			b.WriteByte('_')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		}
	}
	return b.String()
}

// fitName shortens an encoded name to the service limit: names that fit
// are kept, longer ones keep their first characters and end with "_Z"
// and 16 hex digits of the SHA-256 of the full encoded name. No encoded
// name contains "_Z", so a shortened name never equals one that fits.
// fifo appends ".fifo" within the limit.
func fitName(enc string, fifo bool) string {
	limit := maxNameLen
	if fifo {
		limit -= len(fifoSuffix)
	}
	if len(enc) > limit {
		sum := sha256.Sum256([]byte(enc))
		enc = enc[:limit-18] + "_Z" + hex.EncodeToString(sum[:8])
	}
	if fifo {
		enc += fifoSuffix
	}
	return enc
}

// QueueName returns the SQS queue name that holds the messages of the
// Switchboard queue name (KindQueue), for example "orders.dlq" →
// "orders_ddlq" (".fifo" is appended in FIFO mode).
func QueueName(name string, fifo bool) string {
	return fitName(escapeName(name), fifo)
}

// TopicName returns the SNS topic name of the Switchboard topic name.
func TopicName(name string, fifo bool) string {
	return fitName(escapeName(name), fifo)
}

// GroupQueueName returns the SQS queue name of consumer group group of
// topic topic: the escaped topic, "_S", the escaped group. It starts with
// QueueName(topic)'s characters, so that every name used under a prefix
// starts with the escaped prefix.
func GroupQueueName(topic, group string, fifo bool) string {
	return fitName(escapeName(topic)+"_S"+escapeName(group), fifo)
}

// inboxQueueName returns the name of a reply inbox queue: "_R" marks it
// (no topic or queue name maps to a name starting with "_R").
func inboxQueueName(prefix, id string) string {
	return fitName(escapeName(prefix)+"_R"+escapeName(id), false)
}
