// Package storetest checks that a dedup.Store keeps the contract, for the
// tests of Store implementations.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
)

// Run checks the contract of dedup.Store on the store newStore returns,
// a fresh (or freshly namespaced) one for each subtest. It does not check
// expiry, which implementations test with their own clocks.
func Run(t *testing.T, newStore func(t *testing.T) dedup.Store) {
	ctx := context.Background()
	const lease, ttl = time.Minute, time.Hour
	begin := func(t *testing.T, s dedup.Store, key, token string, want dedup.State) {
		t.Helper()
		got, err := s.Begin(ctx, key, token, lease)
		if err != nil || got != want {
			t.Fatalf("Begin(%q, %q) = %v, %v; want %v", key, token, got, err, want)
		}
	}
	t.Run("ClaimBusyDone", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "k", "a", dedup.Claimed)
		begin(t, s, "k", "b", dedup.Busy)
		begin(t, s, "k", "a", dedup.Claimed) // the holder may extend
		begin(t, s, "other", "b", dedup.Claimed)
		if err := s.Complete(ctx, "k", ttl); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", "b", dedup.Done)
		begin(t, s, "k", "a", dedup.Done)
	})
	t.Run("ReleaseOwnClaimOnly", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "k", "a", dedup.Claimed)
		if err := s.Release(ctx, "k", "b"); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", "b", dedup.Busy)
		if err := s.Release(ctx, "k", "a"); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", "b", dedup.Claimed)
		if err := s.Release(ctx, "missing", "a"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ReleaseKeepsDone", func(t *testing.T) {
		s := newStore(t)
		begin(t, s, "k", "a", dedup.Claimed)
		if err := s.Complete(ctx, "k", ttl); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, "k", "a"); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", "b", dedup.Done)
	})
	t.Run("CompleteWithoutClaim", func(t *testing.T) {
		s := newStore(t)
		if err := s.Complete(ctx, "k", ttl); err != nil {
			t.Fatal(err)
		}
		begin(t, s, "k", "a", dedup.Done)
	})
	t.Run("OneClaimantAmongMany", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[dedup.State]int{}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := s.Begin(ctx, "k", string(rune('a'+i)), lease)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[st]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if got[dedup.Claimed] != 1 || got[dedup.Busy] != n-1 {
			t.Fatalf("states %v; want one claimed, %d busy", got, n-1)
		}
	})
}
