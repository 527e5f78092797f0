// Package redisdedup is a dedup.Store in Redis, shared by every consumer
// of a group, on any number of machines.
//
// Each key is one Redis string, Prefix+key:
//
//   - a claim is "claim:<token>", set with SET NX PX lease, so exactly one
//     consumer claims a key and the claim lapses by itself after the lease
//     if its holder dies;
//   - a handled key is "done", set with SET PX retention, replacing the
//     claim;
//   - Release deletes the key only if it still holds the caller's claim
//     (a Lua script compares and deletes atomically), so a late release
//     never drops another consumer's claim or a "done".
//
// The store works with any redis.UniversalClient (a single node, a
// Sentinel failover client or a Cluster: each operation touches one key).
// It does not own the client: close it yourself.
package redisdedup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/switchboard-go/switchboard/dedup"
)

// DefaultPrefix is the key prefix when none is given.
const DefaultPrefix = "switchboard:dedup:"

const (
	claimPrefix = "claim:"
	doneValue   = "done"
)

// releaseScript deletes KEYS[1] if it holds ARGV[1].
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// extendScript sets the expiry of KEYS[1] to ARGV[2] ms if it holds ARGV[1].
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// Store is a dedup.Store in Redis. It is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
}

var _ dedup.Store = (*Store)(nil)

// Option configures New.
type Option func(*Store)

// WithPrefix sets the prefix of every Redis key the store writes. The
// default is DefaultPrefix.
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// New returns a store using client c.
func New(c redis.UniversalClient, opts ...Option) *Store {
	s := &Store{c: c, prefix: DefaultPrefix}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Begin implements dedup.Store with SET NX PX, then GET when the key
// exists.
func (s *Store) Begin(ctx context.Context, key, token string, lease time.Duration) (dedup.State, error) {
	k, claim := s.prefix+key, claimPrefix+token
	// Between SET NX failing and GET, the key may expire or be
	// released: try again, a few times.
	for range 3 {
		ok, err := s.c.SetNX(ctx, k, claim, lease).Result()
		if err != nil {
			return 0, fmt.Errorf("redisdedup: claim %s: %w", k, err)
		}
		if ok {
			return dedup.Claimed, nil
		}
		v, err := s.c.Get(ctx, k).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return 0, fmt.Errorf("redisdedup: read %s: %w", k, err)
		case v == doneValue:
			return dedup.Done, nil
		case v == claim:
			// Our own claim: extend it, unless it changed meanwhile.
			n, err := extendScript.Run(ctx, s.c, []string{k}, claim, max(lease.Milliseconds(), 1)).Int()
			if err != nil {
				return 0, fmt.Errorf("redisdedup: extend %s: %w", k, err)
			}
			if n == 1 {
				return dedup.Claimed, nil
			}
		default:
			return dedup.Busy, nil
		}
	}
	return dedup.Busy, nil
}

// Complete implements dedup.Store.
func (s *Store) Complete(ctx context.Context, key string, ttl time.Duration) error {
	if err := s.c.Set(ctx, s.prefix+key, doneValue, ttl).Err(); err != nil {
		return fmt.Errorf("redisdedup: complete %s: %w", s.prefix+key, err)
	}
	return nil
}

// Release implements dedup.Store: it deletes the key only while it holds
// token's claim.
func (s *Store) Release(ctx context.Context, key, token string) error {
	if err := releaseScript.Run(ctx, s.c, []string{s.prefix + key}, claimPrefix+token).Err(); err != nil {
		return fmt.Errorf("redisdedup: release %s: %w", s.prefix+key, err)
	}
	return nil
}
