package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Admin = (*Transport)(nil)

// adminQueue returns the SQS queue name of a group or queue address and
// the URL of the queue, asking SQS (GetQueueUrl: ErrNotFound when
// missing, nothing created).
func (t *Transport) adminQueue(ctx context.Context, a transport.Address, group string) (qname, qurl string, err error) {
	if err := t.checkOpen(); err != nil {
		return "", "", err
	}
	switch {
	case a.Kind == transport.KindTopic && a.Name != "" && group != "":
		qname = GroupQueueName(a.Name, group, t.opts.FIFO)
	case a.Kind == transport.KindQueue && a.Name != "" && group == "":
		qname = QueueName(a.Name, t.opts.FIFO)
	default:
		return "", "", fmt.Errorf("sqs: %s group %q: %w: want a topic with a group or a queue without one", a, group, transport.ErrInvalid)
	}
	qurl, err = t.queueURL(ctx, qname, true)
	if err != nil {
		t.dropQueue(qname)
		return "", "", err
	}
	return qname, qurl, nil
}

// DeleteGroup implements transport.Admin: it removes the topic's SNS
// subscriptions that deliver to the group's queue, then deletes the queue
// (DeleteQueue). AWS refuses to create a queue of the same name for 60
// seconds after its deletion (QueueDeletedRecently): subscribing to the
// group again fails until then.
func (t *Transport) DeleteGroup(ctx context.Context, topic, group string) error {
	qname, qurl, err := t.adminQueue(ctx, transport.Topic(topic), group)
	if err != nil {
		return err
	}
	qa, err := t.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(qurl),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return wrapErr("GetQueueAttributes "+qname, err)
	}
	qarn := qa.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	arn, err := t.findTopic(ctx, topic)
	if err != nil {
		return err
	}
	if arn != "" {
		var token *string
		for {
			out, err := t.sns.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: aws.String(arn), NextToken: token})
			if err != nil {
				return wrapErr("ListSubscriptionsByTopic "+arn, err)
			}
			for _, s := range out.Subscriptions {
				if aws.ToString(s.Endpoint) != qarn {
					continue
				}
				if _, err := t.sns.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: s.SubscriptionArn}); err != nil {
					return wrapErr("Unsubscribe "+qname, err)
				}
			}
			if token = out.NextToken; token == nil {
				break
			}
		}
	}
	return t.deleteQueue(ctx, qname, qurl)
}

// findTopic returns the ARN of topic, or "" when it does not exist. It
// lists the account's topics (ListTopics) unless the ARN is cached: it
// never creates the topic.
func (t *Transport) findTopic(ctx context.Context, topic string) (string, error) {
	t.mu.Lock()
	arn, ok := t.topics[topic]
	t.mu.Unlock()
	if ok {
		return arn, nil
	}
	suffix := ":" + TopicName(topic, t.opts.FIFO)
	var token *string
	for {
		out, err := t.sns.ListTopics(ctx, &sns.ListTopicsInput{NextToken: token})
		if err != nil {
			return "", wrapErr("ListTopics", err)
		}
		for _, tp := range out.Topics {
			if a := aws.ToString(tp.TopicArn); strings.HasSuffix(a, suffix) {
				return a, nil
			}
		}
		if token = out.NextToken; token == nil {
			return "", nil
		}
	}
}

func (t *Transport) deleteQueue(ctx context.Context, qname, qurl string) error {
	_, err := t.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(qurl)})
	t.dropQueue(qname)
	if err != nil {
		return wrapErr("DeleteQueue "+qname, err)
	}
	return nil
}

// DeleteQueue implements transport.Admin with DeleteQueue. AWS refuses to
// create a queue of the same name for 60 seconds after its deletion
// (QueueDeletedRecently): a Notify or Listen re-creating it fails until
// then.
func (t *Transport) DeleteQueue(ctx context.Context, name string) error {
	qname, qurl, err := t.adminQueue(ctx, transport.Queue(name), "")
	if err != nil {
		return err
	}
	return t.deleteQueue(ctx, qname, qurl)
}

// Purge implements transport.Admin with PurgeQueue. On AWS the purge takes
// up to 60 seconds, and a queue can be purged once per 60 seconds
// (PurgeQueueInProgress).
func (t *Transport) Purge(ctx context.Context, a transport.Address, group string) error {
	qname, qurl, err := t.adminQueue(ctx, a, group)
	if err != nil {
		return err
	}
	if _, err := t.sqs.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(qurl)}); err != nil {
		return wrapErr("PurgeQueue "+qname, err)
	}
	return nil
}

// Inspect implements transport.Admin with GetQueueAttributes:
// ApproximateNumberOfMessages (visible messages; those received and not
// yet deleted are not counted). SQS does not report consumers: for a
// queue, Consumers is its unexpired consumer leases (see
// Options.ConsumerLease), or -1 when no consumer ever took one; for a
// topic's group it is -1.
func (t *Transport) Inspect(ctx context.Context, a transport.Address, group string) (transport.QueueInfo, error) {
	qname, qurl, err := t.adminQueue(ctx, a, group)
	if err != nil {
		return transport.QueueInfo{}, err
	}
	out, err := t.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(qurl),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return transport.QueueInfo{}, wrapErr("GetQueueAttributes "+qname, err)
	}
	n, err := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	if err != nil {
		return transport.QueueInfo{}, fmt.Errorf("sqs: GetQueueAttributes %s: ApproximateNumberOfMessages: %w", qname, err)
	}
	info := transport.QueueInfo{Messages: n, Consumers: -1}
	if a.Kind == transport.KindQueue {
		n, known, err := t.liveLeases(ctx, qname, qurl)
		if err != nil {
			return transport.QueueInfo{}, err
		}
		if known {
			info.Consumers = n
		}
	}
	return info, nil
}

// Peek implements transport.Admin: SQS cannot read a message without
// receiving it, and every ReceiveMessage raises the message's
// ApproximateReceiveCount (and hides it for a visibility timeout), so
// Peek checks the queue exists and fails with errors.ErrUnsupported.
func (t *Transport) Peek(ctx context.Context, a transport.Address, group string, _ int) ([]*transport.Message, error) {
	if _, _, err := t.adminQueue(ctx, a, group); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("sqs: peek: ReceiveMessage raises ApproximateReceiveCount: %w", errors.ErrUnsupported)
}
