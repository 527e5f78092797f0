package messaging

import (
	"context"
	"sync"
)

// room counts the messages a subscription may still take in (MaxInFlight
// less the messages it holds). One goroutine at a time, the holder of the
// fetch turn, waits for room and takes it; any goroutine gives it back.
// It is a counter, not a channel of slots, so that finding how much room
// there is costs one lock, not one channel operation per slot.
type room struct {
	mu      sync.Mutex
	free    int           // may go below zero: an adapter that returned too many
	waiting bool          // the fetcher waits on freed
	freed   chan struct{} // capacity 1
}

func newRoom(n int) *room { return &room{free: n, freed: make(chan struct{}, 1)} }

// wait blocks until there is room for at least one message and returns
// how much (at least 1), or returns 0 when ctx ends.
func (r *room) wait(ctx context.Context) int {
	r.mu.Lock()
	for r.free <= 0 {
		r.waiting = true
		r.mu.Unlock()
		select {
		case <-r.freed:
		case <-ctx.Done():
			r.mu.Lock()
			r.waiting = false
			r.mu.Unlock()
			return 0
		}
		r.mu.Lock()
	}
	n := r.free
	r.mu.Unlock()
	return n
}

// take records n messages taken in.
func (r *room) take(n int) {
	r.mu.Lock()
	r.free -= n
	r.mu.Unlock()
}

// give records one message settled or released.
func (r *room) give() {
	r.mu.Lock()
	r.free++
	wake := r.waiting && r.free > 0
	if wake {
		r.waiting = false
	}
	r.mu.Unlock()
	if wake {
		select {
		case r.freed <- struct{}{}:
		default:
		}
	}
}

// full reports whether no room is left: nothing more will be taken in
// until a message is settled or released.
func (r *room) full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.free <= 0
}
