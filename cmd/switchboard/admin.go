package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/switchboard-go/switchboard/messaging"
)

// exitNotFound is the exit code for a consumer group or queue that does not
// exist (messaging.ErrNotFound).
const exitNotFound = 6

func init() {
	commandDetails["admin"] = `Subcommands:
  admin inspect TOPIC GROUP        how many messages wait in GROUP of TOPIC,
  admin inspect QUEUE              or in a queue, and how many consumers are
                                   connected (-1: the broker does not say)
  admin purge TOPIC GROUP          remove every waiting message; the group
  admin purge QUEUE                or queue stays declared
  admin delete-group TOPIC GROUP   delete a consumer group with its messages;
                                   a later subscribe starts it afresh
  admin delete-queue QUEUE         delete a queue with its messages
  admin delete-service SERVICE     delete a service's request queue
                                   (SERVICE.rpc)

QUEUE is a recipient (notify/listen), a dead-letter queue (TOPIC.GROUP.dlq,
RECIPIENT.dlq, SERVICE.rpc.dlq; see also "switchboard dlq") or a service's
request queue (SERVICE.rpc).

No subcommand creates anything: a group or queue that does not exist fails
with exit code 6 (not found). inspect is read-only. Close the consumers of
a group or queue before purging or deleting it: with consumers connected,
Kafka refuses (exit 2) and RabbitMQ's consumers declare it again. On SQS a
purge takes up to 60 s and a deleted queue's name cannot be used again for
60 s.
`
}

func adminCommand() *command {
	return &command{
		name:    "admin",
		args:    "inspect|purge|delete-group|delete-queue|delete-service NAME [GROUP]",
		summary: "inspect, purge or delete consumer groups and queues",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			asJSON := fs.Bool("json", false, "inspect: print one JSON object")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) < 2 || len(args) > 3 {
					return usagef("want %s, got %d arguments", "inspect|purge|delete-group|delete-queue|delete-service NAME [GROUP]", len(args))
				}
				op, name, group := args[0], args[1], ""
				if len(args) == 3 {
					group = args[2]
				}
				switch op {
				case "inspect", "purge":
				case "delete-group":
					if group == "" {
						return usagef("delete-group needs TOPIC GROUP")
					}
				case "delete-queue", "delete-service":
					if group != "" {
						return usagef("%s takes one name, got %d", op, len(args)-1)
					}
				default:
					return usagef("unknown admin subcommand %q: want inspect, purge, delete-group, delete-queue or delete-service", op)
				}
				c, err := openClient(ctx, e, g)
				if err != nil {
					return err
				}
				defer c.Close()
				return runAdmin(ctx, e, g, c.Admin(), op, name, group, *asJSON)
			}
		},
	}
}

func runAdmin(ctx context.Context, e *env, g *global, adm *messaging.Admin, op, name, group string, asJSON bool) error {
	what := "queue " + name
	if group != "" {
		what = "group " + group + " of topic " + name
	}
	switch op {
	case "inspect":
		info, err := adm.Inspect(ctx, name, group)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(e.stdout).Encode(map[string]any{
				"name": name, "group": group, "messages": info.Messages, "consumers": info.Consumers,
			})
		}
		_, err = fmt.Fprintf(e.stdout, "%s\tmessages=%d\tconsumers=%d\n", what, info.Messages, info.Consumers)
		return err
	case "purge":
		if err := adm.Purge(ctx, name, group); err != nil {
			return err
		}
		g.log.Info("purged", "what", what)
	case "delete-group":
		if err := adm.DeleteGroup(ctx, name, group); err != nil {
			return err
		}
		g.log.Info("deleted", "what", what)
	case "delete-queue":
		if err := adm.DeleteQueue(ctx, name); err != nil {
			return err
		}
		g.log.Info("deleted", "what", what)
	case "delete-service":
		q := messaging.RequestQueue(name)
		if err := adm.DeleteQueue(ctx, q); err != nil {
			return err
		}
		g.log.Info("deleted", "what", "request queue "+q+" of service "+name)
	}
	return nil
}
