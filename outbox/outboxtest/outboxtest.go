// Package outboxtest finds the databases the tests of the SQL-backed
// packages (outbox, dedup/sqldedup) run on, and gives each test tables of
// its own.
//
// Databases are found in this order: the URL in the environment
// (SWITCHBOARD_POSTGRES_URL, SWITCHBOARD_MYSQL_URL, in outbox.OpenDB's
// forms), then the local fixture (PostgreSQL on 127.0.0.1:5432, user
// postgres, database test, trust authentication; MariaDB or MySQL on
// 127.0.0.1:3306, user root, empty password, database test; both started by
// scripts/brokers.sh when installed). When neither answers the test is
// skipped loudly, or fails with SWITCHBOARD_REQUIRE=all (or "postgres",
// "mysql").
package outboxtest

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/outbox"
)

// Environment variables naming the test databases.
const (
	EnvPostgresURL = "SWITCHBOARD_POSTGRES_URL"
	EnvMySQLURL    = "SWITCHBOARD_MYSQL_URL"
)

// Local fixtures, used when the environment names none.
const (
	LocalPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	LocalMySQLURL    = "mysql://root@127.0.0.1:3306/test"
)

// DB is one test database.
type DB struct {
	Name    string // "postgres" or "mysql": the name SWITCHBOARD_REQUIRE uses
	URL     string // the URL it was opened from
	Dialect outbox.Dialect
	*sql.DB
}

// URL returns the URL of the named database ("postgres" or "mysql"): the
// environment's, else the local fixture's.
func URL(name string) string {
	env, local := EnvPostgresURL, LocalPostgresURL
	if name == "mysql" {
		env, local = EnvMySQLURL, LocalMySQLURL
	}
	if u := os.Getenv(env); u != "" {
		return u
	}
	return local
}

// Open opens the named database ("postgres" or "mysql"), closed when the
// test ends, or skips (fails when required) if it does not answer.
func Open(t testing.TB, name string) *DB {
	t.Helper()
	u := URL(name)
	db, d, err := outbox.OpenDB(u)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		testenv.Missing(t, name, "no database answers (set %s, or run scripts/brokers.sh): %v", envOf(name), err)
	}
	t.Cleanup(func() { db.Close() })
	return &DB{Name: name, URL: u, Dialect: d, DB: db}
}

func envOf(name string) string {
	if name == "mysql" {
		return EnvMySQLURL
	}
	return EnvPostgresURL
}

// Each runs f as a subtest on each database, "postgres" and "mysql".
func Each(t *testing.T, f func(t *testing.T, db *DB)) {
	for _, name := range []string{"postgres", "mysql"} {
		t.Run(name, func(t *testing.T) { f(t, Open(t, name)) })
	}
}

var seq atomic.Int64

// Table returns a table name unique to this run ("sbtest_" and a suffix),
// for the test to create and drop.
func Table(t testing.TB) string {
	return "sbtest_" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36) + "_" + strconv.FormatInt(seq.Add(1), 36) + "_" + strconv.Itoa(os.Getpid()%10000)
}
