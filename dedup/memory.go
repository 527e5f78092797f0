package dedup

import (
	"container/heap"
	"container/list"
	"context"
	"sync"
	"time"
)

// DefaultMaxEntries is MemoryOptions.MaxEntries when it is not positive.
const DefaultMaxEntries = 100_000

// MemoryOptions configures NewMemoryStore.
type MemoryOptions struct {
	// MaxEntries bounds the keys remembered, claims and handled keys
	// together. When full, expired entries are dropped first, then the
	// least recently written. Not positive means DefaultMaxEntries.
	MaxEntries int
	// Now returns the current time; nil means time.Now. Tests set it to
	// control expiry.
	Now func() time.Time
}

// MemoryStore is a Store in memory, for consumers in one process. It is
// bounded and expires entries lazily (when looked up, or when room is
// needed): it starts no goroutine and needs no Close. It is safe for
// concurrent use.
type MemoryStore struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	m     map[string]*memEntry
	order *list.List // of *memEntry, least recently written first
	exp   expiryHeap
}

type memEntry struct {
	key     string
	token   string // holder of the claim; "" once done
	expires time.Time
	el      *list.Element
	hi      int // index in the expiry heap
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore(o MemoryOptions) *MemoryStore {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MemoryStore{max: o.MaxEntries, now: o.Now, m: make(map[string]*memEntry), order: list.New()}
}

// Begin implements Store.
func (s *MemoryStore) Begin(_ context.Context, key, token string, lease time.Duration) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e := s.live(key, now); e != nil {
		switch e.token {
		case "":
			return Done, nil
		case token:
			s.write(e, token, now.Add(lease))
			return Claimed, nil
		}
		return Busy, nil
	}
	s.insert(key, token, now.Add(lease), now)
	return Claimed, nil
}

// Complete implements Store.
func (s *MemoryStore) Complete(_ context.Context, key string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e := s.live(key, now); e != nil {
		s.write(e, "", now.Add(ttl))
		return nil
	}
	s.insert(key, "", now.Add(ttl), now)
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.live(key, s.now()); e != nil && e.token != "" && e.token == token {
		s.remove(e)
	}
	return nil
}

// Len returns the number of entries held, expired ones not yet dropped
// included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// live returns key's entry, dropping it if expired.
func (s *MemoryStore) live(key string, now time.Time) *memEntry {
	e := s.m[key]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		s.remove(e)
		return nil
	}
	return e
}

func (s *MemoryStore) write(e *memEntry, token string, expires time.Time) {
	e.token, e.expires = token, expires
	s.order.MoveToBack(e.el)
	heap.Fix(&s.exp, e.hi)
}

func (s *MemoryStore) insert(key, token string, expires, now time.Time) {
	for len(s.m) >= s.max {
		if oldest := s.exp[0]; !now.Before(oldest.expires) {
			s.remove(oldest)
		} else {
			s.remove(s.order.Front().Value.(*memEntry))
		}
	}
	e := &memEntry{key: key, token: token, expires: expires}
	e.el = s.order.PushBack(e)
	heap.Push(&s.exp, e)
	s.m[key] = e
}

func (s *MemoryStore) remove(e *memEntry) {
	delete(s.m, e.key)
	s.order.Remove(e.el)
	heap.Remove(&s.exp, e.hi)
}

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hi, h[j].hi = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.hi = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
