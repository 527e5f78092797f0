package outbox

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// lockID returns the advisory lock identifier of an ownership name of
// table: on PostgreSQL an int64 (pg_try_advisory_lock's bigint key
// space), on MySQL "sbo:" and 48 hex digits (GET_LOCK names are at most
// 64 characters). Both come from SHA-256 of the table and the name, so
// outboxes in one database do not share locks.
func lockID(d Dialect, table, name string) any {
	h := sha256.New()
	h.Write([]byte(table))
	h.Write([]byte{0})
	h.Write([]byte(name))
	sum := h.Sum(nil)
	if d == Postgres {
		return int64(binary.BigEndian.Uint64(sum))
	}
	return "sbo:" + hex.EncodeToString(sum[:24])
}
