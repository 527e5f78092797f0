package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/outbox"
)

// envDatabaseURL names the outbox's database when --db is not given.
const envDatabaseURL = "SWITCHBOARD_DATABASE_URL"

func init() {
	commandDetails["outbox"] = `Subcommands:
  outbox relay     forward the committed rows of a transactional outbox
                   (package outbox) to the broker at --url, until Ctrl-C
                   or SIGTERM; any number of relays may run on one table
  outbox migrate   create the outbox's tables if they do not exist
  outbox status    print the rows waiting, the age of the oldest, and the
                   rows moved to the dead table

The database comes from --db, else $SWITCHBOARD_DATABASE_URL:
  postgres://user:pass@host:5432/db?sslmode=disable   (PostgreSQL 14+)
  mysql://user:pass@host:3306/db                      (MySQL 8+, MariaDB 10.6+)
The table is --table (default switchboard_outbox; its dead table is
TABLE_dead). The relay checks each message against the limits of the
transport at --url: a row the broker refuses for good (too large, invalid)
is moved to the dead table with its error; other failures are retried with
backoff. On PostgreSQL it wakes on LISTEN/NOTIFY, elsewhere it polls every
--poll. It logs "msg=ready" once it runs.
`
}

func outboxCommand() *command {
	return &command{
		name:    "outbox",
		args:    "relay|migrate|status",
		summary: "relay a transactional outbox's rows to the broker, migrate or inspect it",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			db := fs.String("db", "", "database `URL` (default: $"+envDatabaseURL+")")
			table := fs.String("table", outbox.DefaultTable, "outbox table `name`")
			batch := fs.Int("batch", 100, "relay: rows per round, 1 to 1000")
			poll := fs.Duration("poll", 0, "relay: polling `interval` when idle (default 250ms; 2s with PostgreSQL's LISTEN)")
			migrate := fs.Bool("migrate", false, "relay: create the tables first if they do not exist")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("want relay, migrate or status, got %d arguments", len(args))
				}
				dbURL := *db
				if dbURL == "" {
					dbURL = e.getenv(envDatabaseURL)
				}
				if dbURL == "" {
					return usagef("no database: give --db URL or set %s", envDatabaseURL)
				}
				if *poll < 0 {
					return usagef("--poll %s: must be positive", *poll)
				}
				sqlDB, _, err := outbox.OpenDB(dbURL)
				if err != nil {
					return err
				}
				defer sqlDB.Close()
				c, err := openClient(ctx, e, g)
				if err != nil {
					return err
				}
				defer c.Close()
				opts := []outbox.Option{outbox.WithTable(*table), outbox.WithBatchSize(*batch), outbox.WithLogger(g.log)}
				if *poll > 0 {
					opts = append(opts, outbox.WithPollInterval(*poll))
				}
				ob, err := outbox.New(sqlDB, c, opts...)
				if err != nil {
					return err
				}
				switch args[0] {
				case "migrate":
					return ob.Migrate(ctx)
				case "status":
					n, age, err := ob.Backlog(ctx)
					if err != nil {
						return err
					}
					dead, err := ob.Dead(ctx, 1000)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "table %s: %d waiting, oldest %s; %d dead\n", ob.Table(), n, age.Round(time.Millisecond), len(dead))
					for _, d := range dead {
						fmt.Fprintf(e.stdout, "dead %d %s:%s id=%s key=%q: %s\n", d.Seq, d.Kind, d.Destination, d.ID, d.Key, d.Error)
					}
					return nil
				case "relay":
					if *migrate {
						if err := ob.Migrate(ctx); err != nil {
							return err
						}
					}
					g.log.Info("ready", "table", ob.Table(), "dialect", ob.Dialect().String())
					return ob.Relay(ctx)
				}
				return usagef("unknown outbox subcommand %q: want relay, migrate or status", args[0])
			}
		},
	}
}
