package sqs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/switchboard-go/switchboard/transport"
)

// wrapErr wraps an SDK error from operation op, marking it with the
// transport sentinel it matches: ErrNotFound for a missing queue or topic,
// ErrUnavailable for network failures and server errors, ErrInvalid for
// rejected parameters. Context errors stay matchable with errors.Is.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if s := sentinel(err); s != nil {
		return fmt.Errorf("sqs: %s: %w: %w", op, s, err)
	}
	return fmt.Errorf("sqs: %s: %w", op, err)
}

func sentinel(err error) error {
	if isNotFound(err) {
		return transport.ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The caller's context ended; keep it matchable, but a dial that
		// timed out is also a sign the broker is unreachable.
		var ne net.Error
		if errors.As(err, &ne) && !errors.Is(err, context.Canceled) {
			return transport.ErrUnavailable
		}
		return nil
	}
	if isUnavailable(err) {
		return transport.ErrUnavailable
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidParameterValue", "InvalidAttributeValue", "InvalidAttributeName",
			"InvalidParameter", "ValidationError", "InvalidMessageContents", "InvalidBatchEntryId":
			return transport.ErrInvalid
		case "MessageTooLong", "BatchRequestTooLong":
			return transport.ErrMessageTooLarge
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var qne *sqstypes.QueueDoesNotExist
	if errors.As(err, &qne) {
		return true
	}
	var nfe *snstypes.NotFoundException
	if errors.As(err, &nfe) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NotFound", "NotFoundException":
			return true
		}
	}
	return false
}

func isUnavailable(err error) bool {
	var mae *retry.MaxAttemptsError
	var qe ratelimit.QuotaExceededError
	var ope *net.OpError
	switch {
	case errors.As(err, &ope), errors.As(err, &qe),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &mae) && isUnavailable(mae.Err):
		return true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "use of closed network connection") ||
		strings.Contains(s, "connection reset") || strings.Contains(s, "retry quota exceeded")
}

// batchErr describes the failed entries of a batch call.
func batchErr(op string, codes []string, msgs []string) error {
	if len(codes) == 0 {
		return nil
	}
	var sent error
	unavailable := true
	for _, c := range codes {
		switch c {
		case "InternalError", "ServiceUnavailable", "InternalFailure", "KMS.ThrottlingException", "ThrottlingException", "Throttling":
		default:
			unavailable = false
		}
		switch c {
		case "MessageTooLong", "BatchRequestTooLong":
			sent = transport.ErrMessageTooLarge
		case "InvalidMessageContents", "InvalidParameterValue":
			sent = transport.ErrInvalid
		}
	}
	if unavailable {
		sent = transport.ErrUnavailable
	}
	detail := fmt.Sprintf("%d of the batch failed: %s: %s", len(codes), codes[0], msgs[0])
	if sent != nil {
		return fmt.Errorf("sqs: %s: %w: %s", op, sent, detail)
	}
	return fmt.Errorf("sqs: %s: %s", op, detail)
}
