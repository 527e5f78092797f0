package redisdedup_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/dedup/redisdedup"
	"github.com/switchboard-go/switchboard/dedup/storetest"
	"github.com/switchboard-go/switchboard/internal/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client connects to SWITCHBOARD_REDIS_URL or 127.0.0.1:6379, or skips
// (fails with SWITCHBOARD_REQUIRE=redis).
func client(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("SWITCHBOARD_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("SWITCHBOARD_REDIS_URL: %v", err)
	}
	c := redis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		testenv.Missing(t, "redis", "no Redis at %s: %v", o.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix returns a key prefix unique to this test run, and deletes its
// keys at the end.
func prefix(t *testing.T, c *redis.Client) string {
	p := "switchboard-test:" + uuid.NewString() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

func TestContract(t *testing.T) {
	c := client(t)
	storetest.Run(t, func(t *testing.T) dedup.Store {
		return redisdedup.New(c, redisdedup.WithPrefix(prefix(t, c)))
	})
}

func TestConcurrentConsumers(t *testing.T) {
	c := client(t)
	storetest.ConcurrentConsumers(t, redisdedup.New(c, redisdedup.WithPrefix(prefix(t, c))), "")
}

// TestExpiry checks the TTLs set on claims and handled keys, without
// waiting for them to pass.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	c := client(t)
	p := prefix(t, c)
	s := redisdedup.New(c, redisdedup.WithPrefix(p))
	if st, err := s.Begin(ctx, "k", "a", 1500*time.Millisecond); err != nil || st != dedup.Claimed {
		t.Fatalf("Begin %v %v", st, err)
	}
	if ttl := c.PTTL(ctx, p+"k").Val(); ttl <= 0 || ttl > 1500*time.Millisecond {
		t.Fatalf("claim TTL %s; want (0, 1.5s]", ttl)
	}
	if st, err := s.Begin(ctx, "k", "a", time.Hour); err != nil || st != dedup.Claimed {
		t.Fatalf("extend %v %v", st, err)
	}
	if ttl := c.PTTL(ctx, p+"k").Val(); ttl <= 1500*time.Millisecond {
		t.Fatalf("extended claim TTL %s; want about an hour", ttl)
	}
	if err := s.Complete(ctx, "k", 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, p+"k").Val(); ttl <= 2*time.Hour || ttl > 3*time.Hour {
		t.Fatalf("done TTL %s; want about 3h", ttl)
	}
	// A lapsed claim: the key is gone, so the next consumer claims it.
	if st, _ := s.Begin(ctx, "gone", "a", time.Minute); st != dedup.Claimed {
		t.Fatal(st)
	}
	c.Del(ctx, p+"gone") // what the lease's expiry does
	if st, _ := s.Begin(ctx, "gone", "b", time.Minute); st != dedup.Claimed {
		t.Fatalf("after the claim lapsed: %v; want claimed", st)
	}
}

func TestStoreErrorsWrapped(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	s := redisdedup.New(c)
	if _, err := s.Begin(context.Background(), "k", "a", time.Second); err == nil {
		t.Fatal("Begin on an unreachable Redis succeeded")
	}
}
