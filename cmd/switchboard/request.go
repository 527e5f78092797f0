package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode"

	"github.com/switchboard-go/switchboard/messaging"
)

func init() {
	commandDetails["request"] = `Sends a request to SERVICE and prints the reply's body (a newline is added
when the body does not end with one), or with --json the whole reply as
one JSON object ("responder" names the service that answered). The body
is BODY, the file given with --file, or stdin. Exits 3 when no reply
arrives within --timeout, 4 when nobody serves SERVICE (never served,
or every serve process stopped), 5 when the responder returned an error
(printed on stderr).
`
	commandDetails["serve"] = `Answers the requests sent to SERVICE. Without --exec it echoes each
request: the reply has the request's body, key, type, version, content
type and headers. With --exec CMD it runs CMD with sh -c for each request,
the request body on stdin, and replies with its stdout; a non-zero exit
sends its stderr back as the responder's error (the requester exits 5).
CMD's environment also holds SWITCHBOARD_SERVICE, SWITCHBOARD_MESSAGE_ID,
SWITCHBOARD_KEY, SWITCHBOARD_TYPE, SWITCHBOARD_CONTENT_TYPE and
SWITCHBOARD_HEADER_<NAME> (the name upper-cased, other characters than
letters and digits as _). Logs "ready" on stderr once serving. Ctrl-C
stops it gracefully (exit 0).
`
}

func requestCommand() *command {
	return &command{
		name:    "request",
		args:    "SERVICE [BODY]",
		summary: "send a request to a service and print the reply",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			var mf messageFlags
			mf.register(fs)
			timeout := fs.Duration("timeout", 30*time.Second, "wait at most this `duration` for the reply, connecting included (exit 3 after)")
			asJSON := fs.Bool("json", false, "print the whole reply as one JSON object")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) == 0 {
					return usagef("missing SERVICE")
				}
				if *timeout <= 0 {
					return usagef("--timeout %s: must be positive", *timeout)
				}
				service := args[0]
				req, err := mf.build(e, g, args[1:])
				if err != nil {
					return err
				}
				// One timeout covers connecting and the reply.
				rctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				c, err := openClient(rctx, e, g)
				if err != nil {
					return err
				}
				defer c.Close()
				reply, err := c.Request(rctx, service, req)
				if err != nil {
					if errors.Is(err, messaging.ErrTimeout) {
						return fmt.Errorf("no reply from %s within %s: %w", service, *timeout, err)
					}
					return err
				}
				if *asJSON {
					b, err := json.Marshal(toJSON(reply, nil))
					if err != nil {
						return err
					}
					_, err = e.stdout.Write(append(b, '\n'))
					return err
				}
				body := reply.Body
				if len(body) > 0 && body[len(body)-1] != '\n' {
					body = append(body[:len(body):len(body)], '\n')
				}
				_, err = e.stdout.Write(body)
				return err
			}
		},
	}
}

func serveCommand() *command {
	return &command{
		name:    "serve",
		args:    "SERVICE",
		summary: "answer requests: echo them, or run a command per request (--exec)",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			var cf consumeFlags
			cf.register(fs, "requests")
			execCmd := fs.String("exec", "", "run `CMD` (with sh -c) per request: body on stdin, reply from stdout")
			conc := fs.Int("concurrency", 1, "serve up to `N` requests at once")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("want one SERVICE, got %d arguments", len(args))
				}
				if err := cf.check(); err != nil {
					return err
				}
				if *conc < 1 {
					return usagef("--concurrency %d: must be at least 1", *conc)
				}
				service := args[0]
				h := echo
				if *execCmd != "" {
					h = execHandler(service, *execCmd)
				}
				return consume(ctx, e, g, cf, "requests", func(c *messaging.Client, mw messaging.Middleware) (*messaging.Subscription, error) {
					return c.Serve(ctx, service, h, messaging.WithMaxInFlight(*conc),
						messaging.WithRetry(holdRetry), messaging.WithMiddleware(mw))
				}, "service", service)
			}
		},
	}
}

// echo replies with the request itself.
func echo(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
	return &messaging.Message{
		Key: req.Key, Headers: req.Headers, Body: req.Body,
		ContentType: req.ContentType, Type: req.Type, Version: req.Version,
	}, nil
}

// maxStderr bounds the command's stderr sent back as an error.
const maxStderr = 2 << 10

func execHandler(service, command string) messaging.ReplyHandler {
	return func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		cmd.WaitDelay = 5 * time.Second
		cmd.Stdin = bytes.NewReader(req.Body)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Env = append(os.Environ(),
			"SWITCHBOARD_SERVICE="+service,
			"SWITCHBOARD_MESSAGE_ID="+req.ID,
			"SWITCHBOARD_KEY="+req.Key,
			"SWITCHBOARD_TYPE="+req.Type,
			"SWITCHBOARD_CONTENT_TYPE="+req.ContentType,
		)
		for k, v := range req.Headers {
			cmd.Env = append(cmd.Env, "SWITCHBOARD_HEADER_"+envName(k)+"="+v)
		}
		if err := cmd.Run(); err != nil {
			text := strings.TrimSpace(stderr.String())
			if len(text) > maxStderr {
				text = text[len(text)-maxStderr:]
			}
			if text == "" {
				return nil, fmt.Errorf("command failed: %v", err)
			}
			return nil, fmt.Errorf("command failed: %v: %s", err, text)
		}
		return &messaging.Message{Body: stdout.Bytes()}, nil
	}
}

// envName turns a header name into the tail of an environment variable's
// name.
func envName(h string) string {
	return strings.Map(func(r rune) rune {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return unicode.ToUpper(r)
		}
		return '_'
	}, h)
}
