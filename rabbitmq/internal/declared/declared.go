// Package declared records the exchanges and queues the rabbitmq adapter
// declares, once a test has enabled it (package rabbitmqtest does, when a
// test imports it), so that tests can delete what they declared: AMQP
// 0-9-1 cannot list a broker's queues. Production code never enables it,
// and then Record does nothing.
package declared

import (
	"strings"
	"sync"
	"sync/atomic"
)

var (
	enabled atomic.Bool
	mu      sync.Mutex
	names   map[string]map[string]byte // broker -> name -> 'q' or 'x'
)

// Enable turns recording on for the rest of the process.
func Enable() { enabled.Store(true) }

// Record notes that name (an AMQP queue, kind 'q', or exchange, kind 'x')
// was declared on broker ("host/vhost").
func Record(broker, name string, kind byte) {
	if !enabled.Load() {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if names == nil {
		names = make(map[string]map[string]byte)
	}
	if names[broker] == nil {
		names[broker] = make(map[string]byte)
	}
	names[broker][name] = kind
}

// List returns the queues and exchanges recorded on broker whose names
// begin with prefix.
func List(broker, prefix string) (queues, exchanges []string) {
	mu.Lock()
	defer mu.Unlock()
	for name, kind := range names[broker] {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		if kind == 'q' {
			queues = append(queues, name)
		} else {
			exchanges = append(exchanges, name)
		}
	}
	return queues, exchanges
}

// Forget removes name from what broker has recorded.
func Forget(broker, name string) {
	mu.Lock()
	defer mu.Unlock()
	delete(names[broker], name)
}
