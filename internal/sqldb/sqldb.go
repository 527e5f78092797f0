// Package sqldb holds what the SQL-backed packages (outbox, dedup/sqldedup)
// share: the SQL dialects, their detection from a *sql.DB, placeholders,
// table-name checks and the classification of driver errors.
package sqldb

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Dialect is an SQL dialect.
type Dialect int

const (
	// Auto detects the dialect from the *sql.DB's driver.
	Auto Dialect = iota
	// Postgres is PostgreSQL 14 or later (driver: github.com/jackc/pgx/v5/stdlib
	// or github.com/lib/pq).
	Postgres
	// MySQL is MySQL 8.0 or later, or MariaDB 10.6 or later (driver:
	// github.com/go-sql-driver/mysql).
	MySQL
)

// String returns "postgres", "mysql" or "auto".
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	case Auto:
		return "auto"
	}
	return "dialect(" + strconv.Itoa(int(d)) + ")"
}

// ErrUnknownDriver is returned by Detect for a driver it does not know.
var ErrUnknownDriver = errors.New("unknown database/sql driver; choose the dialect explicitly")

// Detect returns d, or when d is Auto, the dialect of drv by its package:
// github.com/jackc/pgx (stdlib) and github.com/lib/pq are Postgres,
// github.com/go-sql-driver/mysql is MySQL.
func Detect(d Dialect, drv any) (Dialect, error) {
	if d != Auto {
		if d != Postgres && d != MySQL {
			return 0, fmt.Errorf("unknown dialect %d", int(d))
		}
		return d, nil
	}
	t := reflect.TypeOf(drv)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return 0, ErrUnknownDriver
	}
	p := t.PkgPath()
	switch {
	case strings.HasPrefix(p, "github.com/jackc/pgx"), strings.HasPrefix(p, "github.com/lib/pq"):
		return Postgres, nil
	case strings.HasPrefix(p, "github.com/go-sql-driver/mysql"):
		return MySQL, nil
	}
	return 0, fmt.Errorf("%w (driver %s)", ErrUnknownDriver, t)
}

// Placeholders returns n placeholders separated by commas, numbered from
// first ($first, $first+1, ... on Postgres; ? on MySQL).
func (d Dialect) Placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if d == Postgres {
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(first + i))
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

// P returns the i-th placeholder (1-based).
func (d Dialect) P(i int) string {
	if d == Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// MaxTableName is the longest table name CheckTable accepts, leaving room
// for the suffixes of derived names within both databases' identifier
// limits (63 bytes on PostgreSQL, 64 on MySQL).
const MaxTableName = 40

// CheckTable checks a table name: 1 to MaxTableName characters from
// [a-z0-9_], starting with a letter or underscore. Names are used unquoted,
// so they are lower case: PostgreSQL folds unquoted names to lower case.
func CheckTable(name string) error {
	if name == "" || len(name) > MaxTableName {
		return fmt.Errorf("table name %q must be 1 to %d characters", name, MaxTableName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("table name %q: character %q at %d is not allowed (use a-z 0-9 _, starting with a letter or _)", name, c, i)
		}
	}
	return nil
}

// IsMissingTable reports whether err is the database's "table does not
// exist" error (PostgreSQL SQLSTATE 42P01, MySQL error 1146).
func IsMissingTable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "42P01"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1146
	}
	return false
}

// IsDuplicateKey reports whether err is a unique-key violation
// (PostgreSQL SQLSTATE 23505, MySQL error 1062).
func IsDuplicateKey(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return false
}

// SplitStatements splits a schema file into its statements: they are
// separated by a line holding only "-- ;" (so that function bodies may
// hold semicolons). Empty statements and comment-only ones are dropped.
func SplitStatements(script string) []string {
	var out []string
	for _, s := range strings.Split(script, "\n-- ;\n") {
		keep := false
		for _, line := range strings.Split(s, "\n") {
			l := strings.TrimSpace(line)
			if l != "" && !strings.HasPrefix(l, "--") {
				keep = true
				break
			}
		}
		if keep {
			out = append(out, strings.TrimSpace(s))
		}
	}
	return out
}
