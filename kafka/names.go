package kafka

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/switchboard-go/switchboard/transport"
)

// Kafka topic names may hold [a-zA-Z0-9._-] and at most 249 characters.
const maxTopicLen = 249

// Namespace prefixes keep the kinds apart: a queue "x" and a topic "x" are
// different Kafka topics.
const (
	topicPrefix = "topic."
	queuePrefix = "queue."
	replyPrefix = "reply."
)

func legalTopicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// kafkaName maps a Switchboard name of one kind to its Kafka topic name.
//
// A name made of legal characters that fits is used as is after the kind's
// prefix ("topic.orders"). Any other name (with '_', characters Kafka
// does not allow, or too long) becomes "<kind>-h." followed by a
// sanitised part of the name and a hash of the whole name: since "<kind>-h."
// never starts a direct name ("<kind>." does), the mapping is collision-free.
func kafkaName(prefix, name string) string {
	// Kafka refuses topics whose names differ only in '.' versus '_', so
	// names with '_' are hashed too: direct names never hold '_', which
	// makes the '.'/'_' normalisation injective on them.
	ok := name != ""
	for i := 0; ok && i < len(name); i++ {
		ok = legalTopicChar(name[i]) && name[i] != '_'
	}
	if ok && len(prefix)+len(name) <= maxTopicLen {
		return prefix + name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:12])
	var b strings.Builder
	for i := 0; i < len(name) && b.Len() < 120; i++ {
		if legalTopicChar(name[i]) && name[i] != '_' {
			b.WriteByte(name[i])
		} else {
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(prefix, ".") + "-h." + b.String() + "." + h
}

// topicFor returns the Kafka topic of a Topic or Queue address.
func topicFor(a transport.Address) (string, error) {
	if a.Name == "" {
		return "", fmt.Errorf("%w: kafka: empty %s name", transport.ErrInvalid, a.Kind)
	}
	switch a.Kind {
	case transport.KindTopic:
		return kafkaName(topicPrefix, a.Name), nil
	case transport.KindQueue:
		return kafkaName(queuePrefix, a.Name), nil
	case transport.KindReply:
		// A reply address is the Kafka topic name of the inbox.
		if !strings.HasPrefix(a.Name, replyPrefix) || len(a.Name) > maxTopicLen {
			return "", fmt.Errorf("%w: kafka: %q is not a reply address of this adapter", transport.ErrInvalid, a.Name)
		}
		for i := 0; i < len(a.Name); i++ {
			if !legalTopicChar(a.Name[i]) {
				return "", fmt.Errorf("%w: kafka: %q is not a reply address of this adapter", transport.ErrInvalid, a.Name)
			}
		}
		return a.Name, nil
	}
	return "", fmt.Errorf("%w: kafka: unknown address kind %d", transport.ErrInvalid, a.Kind)
}

// groupFor returns the Kafka consumer group ID of a subscription. Topic
// groups are "<kafka topic>:<group>" (":" cannot occur in a Kafka topic
// name, so the pair is unambiguous); a queue is read by the group named
// like its Kafka topic.
func groupFor(kafkaTopic string, kind transport.Kind, group string) string {
	if kind == transport.KindQueue {
		return kafkaTopic
	}
	return kafkaTopic + ":" + group
}
