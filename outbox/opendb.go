package outbox

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/switchboard-go/switchboard/messaging"
)

// OpenDB opens a database by URL, with the driver of its scheme:
//
//	postgres://user:pass@host:5432/db?sslmode=disable   (also postgresql://; pgx)
//	mysql://user:pass@host:3306/db?param=value          (go-sql-driver/mysql)
//
// MySQL URLs are turned into the driver's DSN (user:pass@tcp(host:port)/db);
// their query parameters are the driver's. It returns the dialect with the
// database, and an error matching messaging.ErrInvalid for a URL it cannot
// use (the error never holds the password). It does not connect: use
// db.PingContext.
func OpenDB(rawURL string) (*sql.DB, Dialect, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: outbox: database URL does not parse", messaging.ErrInvalid)
	}
	switch strings.ToLower(u.Scheme) {
	case "postgres", "postgresql":
		db, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, 0, fmt.Errorf("outbox: open %s: %w", u.Redacted(), err)
		}
		return db, Postgres, nil
	case "mysql", "mariadb":
		cfg := mysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		if u.Port() == "" {
			cfg.Addr = u.Hostname() + ":3306"
		}
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		if len(u.Query()) > 0 {
			dsn := cfg.FormatDSN()
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			if cfg, err = mysql.ParseDSN(dsn + sep + u.RawQuery); err != nil {
				return nil, 0, fmt.Errorf("%w: outbox: MySQL parameters of %s: %v", messaging.ErrInvalid, u.Redacted(), err)
			}
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: outbox: %s: %v", messaging.ErrInvalid, u.Redacted(), err)
		}
		return sql.OpenDB(conn), MySQL, nil
	}
	return nil, 0, fmt.Errorf("%w: outbox: database URL scheme %q; use postgres:// or mysql://", messaging.ErrInvalid, u.Scheme)
}
