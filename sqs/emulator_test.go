package sqs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/internal/testenv"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/sqs/sqstest"
	"github.com/switchboard-go/switchboard/transport"
)

// The emulator: SWITCHBOARD_SQS_ENDPOINT when set; else the pinned
// fauxqs (testdata/emulator) started by TestMain on a free port.
var (
	endpoint    string
	endpointErr string
	shared      *sqstest.Emulator
)

const region = sqstest.Region

func TestMain(m *testing.M) {
	// Dummy static credentials for the emulator (it does not check them);
	// the opener reads them through the default AWS chain.
	sqstest.SetDummyCredentials()
	if ep := os.Getenv("SWITCHBOARD_SQS_ENDPOINT"); ep != "" {
		endpoint = ep
	} else if e, err := startEmulator(0); err != nil {
		endpointErr = err.Error()
	} else {
		shared = e
		endpoint = e.Endpoint()
	}
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startEmulator starts an emulator on port (0: a free one).
func startEmulator(port int) (*sqstest.Emulator, error) { return sqstest.Start(port) }

// needEndpoint returns the endpoint or reports the broker missing.
func needEndpoint(t testing.TB) string {
	t.Helper()
	if endpoint == "" {
		testenv.Missing(t, "sqs", "no SWITCHBOARD_SQS_ENDPOINT and the fauxqs emulator could not start: %s", endpointErr)
	}
	return endpoint
}

// openURL opens a transport on the test endpoint through the registry.
func openURL(t testing.TB, ep string, extra string) transport.Transport {
	t.Helper()
	u := "sqs://?region=" + region + "&endpoint=" + url.QueryEscape(ep) + "&wait=1s"
	if extra != "" {
		u += "&" + extra
	}
	tr, err := transport.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return tr
}

// open returns a transport on the test endpoint, closed at test end.
func open(t testing.TB, extra string) transport.Transport {
	t.Helper()
	tr := openURL(t, needEndpoint(t), extra)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// rawConfig is an aws.Config for the endpoint with dummy credentials.
func rawConfig(ep string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(ep),
	}
}

// uniq returns a unique name prefix and deletes what was made under it
// when the test ends.
func uniq(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "sbt-" + hex.EncodeToString(b[:]) + "-"
	if ep := endpoint; ep != "" {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := deletePrefix(ctx, ep, prefix); err != nil {
				t.Logf("teardown %s: %v", prefix, err)
			}
		})
	}
	return prefix
}

// deletePrefix deletes the queues, topics and subscriptions whose
// Switchboard names start with prefix.
func deletePrefix(ctx context.Context, ep, prefix string) error {
	cfg := rawConfig(ep)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	cfg.HTTPClient = &http.Client{Transport: tr}
	sq, sn := sqs.NewFromConfig(cfg), sns.NewFromConfig(cfg)
	// Prefixes map to prefixes (escaping is per character); ".fifo" is
	// only a suffix.
	p := sbsqs.QueueName(prefix, false)
	var errs []error
	var token *string
	for {
		out, err := sq.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(p), NextToken: token, MaxResults: aws.Int32(1000)})
		if err != nil {
			return err
		}
		for _, u := range out.QueueUrls {
			if _, err := sq.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
				errs = append(errs, err)
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	token = nil
	for {
		out, err := sn.ListTopics(ctx, &sns.ListTopicsInput{NextToken: token})
		if err != nil {
			return err
		}
		for _, tp := range out.Topics {
			arn := aws.ToString(tp.TopicArn)
			name := arn[strings.LastIndex(arn, ":")+1:]
			if !strings.HasPrefix(name, p) {
				continue
			}
			subs, err := sn.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: aws.String(arn)})
			if err == nil {
				for _, s := range subs.Subscriptions {
					_, _ = sn.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: s.SubscriptionArn})
				}
			}
			if _, err := sn.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: aws.String(arn)}); err != nil {
				errs = append(errs, err)
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	return errors.Join(errs...)
}
