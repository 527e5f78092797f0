package harness

import (
	"bytes"
	"fmt"
	"net/url"
	"runtime"
	"strings"
)

// Endpoints says where the brokers of the scale table and the soak are.
// An empty field leaves that transport out.
type Endpoints struct {
	AMQP  string   // RabbitMQ URL
	Kafka []string // Kafka bootstrap brokers
	SQS   string   // SQS endpoint (fauxqs or real)
}

// sbOpener returns the Switchboard opener of transport, as the comparison
// tables use it (the same URLs and options).
func sbOpener(transport string, ep Endpoints) (opener, error) {
	switch transport {
	case "inmem":
		return openMem, nil
	case "rabbitmq":
		if ep.AMQP == "" {
			return nil, fmt.Errorf("rabbitmq: no URL")
		}
		return openRabbit(ep.AMQP), nil
	case "kafka":
		if len(ep.Kafka) == 0 {
			return nil, fmt.Errorf("kafka: no brokers")
		}
		return openURL("kafka://" + strings.Join(ep.Kafka, ",") + "?" + KafkaOptions), nil
	case "sqs":
		if ep.SQS == "" {
			return nil, fmt.Errorf("sqs: no endpoint")
		}
		return openURL("sqs://?region=" + SQSRegion + "&endpoint=" + url.QueryEscape(ep.SQS) + "&wait=1s"), nil
	}
	return nil, fmt.Errorf("unknown transport %q", transport)
}

// withBody runs fn with the harness's message body set to size bytes of
// text, then restores the 128-byte body. The comparison's setups read the
// package's body when they build and send messages, so the same raw and
// Switchboard code runs at every size. Not safe for concurrent cases.
func withBody[T any](size int, fn func() T) T {
	old := body
	body = bytes.Repeat([]byte("x"), size)
	defer func() { body = old }()
	return fn()
}

// memNow is the process's live heap after a collection and its goroutine
// count.
type memNow struct {
	Heap       uint64 // HeapAlloc after runtime.GC, bytes
	Stacks     uint64 // StackInuse, bytes
	Goroutines int
}

func measureMem() memNow {
	runtime.GC()
	runtime.GC() // the first may leave finalizer-held objects
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memNow{Heap: m.HeapAlloc, Stacks: m.StackInuse, Goroutines: runtime.NumGoroutine()}
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }
