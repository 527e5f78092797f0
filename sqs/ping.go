package sqs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Pinger = (*Transport)(nil)

// Ping implements transport.Pinger with one ListQueues call limited to one
// queue (it needs the sqs:ListQueues permission). Credentials SQS refuses
// fail with an error matching transport.ErrUnauthorized; an unreachable
// endpoint with one matching transport.ErrUnavailable.
func (t *Transport) Ping(ctx context.Context) error {
	if err := t.checkOpen(); err != nil {
		return err
	}
	_, err := t.sqs.ListQueues(ctx, &sqs.ListQueuesInput{MaxResults: aws.Int32(1), QueueNamePrefix: aws.String("sb-ping-")})
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
			"AccessDenied", "AccessDeniedException", "MissingAuthenticationToken", "ExpiredToken":
			return fmt.Errorf("sqs: ping: %w: %w", transport.ErrUnauthorized, err)
		}
	}
	return wrapErr("ping", err)
}
