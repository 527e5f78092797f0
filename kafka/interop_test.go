package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/transport"
)

// Interoperability with librdkafka's kcat (Debian package kcat): records
// produced by kcat, headers included, are consumed by Switchboard and vice
// versa, and a key lands on the same partition whichever client sends it
// (kcat uses librdkafka's default partitioner, consistent_random; the
// adapter's default balancer is CRC-32, which matches it).

func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		testenv.Missing(t, "kcat", "the kcat binary is not installed (apt-get install kcat)")
	}
	return p
}

func runKcat(t *testing.T, kcat string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

func TestInteropKcat(t *testing.T) {
	kcat := kcatPath(t)
	brokers := testBrokers(t)
	bs := strings.Join(brokers, ",")
	tr := openT(t)
	name := unique("kcat")
	topic := transport.Topic(name)
	kafkaTopic := "topic." + name
	s := subscribe(t, tr, topic, "g") // creates the topic (3 partitions) and the group

	keys := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}

	// kcat -> Switchboard, CloudEvents headers and an application header.
	for i, k := range keys {
		runKcat(t, kcat, k+"\t"+fmt.Sprintf(`{"n":%d}`, i)+"\n",
			"-P", "-b", bs, "-t", kafkaTopic, "-K", "\t",
			"-H", "ce_specversion=1.0", "-H", "ce_id=kcat-"+k, "-H", "ce_type=test.kcat",
			"-H", "ce_time=2024-01-02T03:04:05.123456789Z", "-H", "ce_correlationid=corr-"+k,
			"-H", "content-type=application/json", "-H", "app-header=v"+strconv.Itoa(i), "-H", "sb-attempt=1")
	}
	kcatPart := map[string]int{}
	for _, m := range recv(t, s, len(keys), true) {
		var km kafkago.Message
		if m.AsFunc == nil || !m.AsFunc(&km) {
			t.Fatal("received message does not convert to a kafka-go message")
		}
		k := m.Key
		kcatPart[k] = km.Partition
		want := "kcat-" + k
		if m.ID != want || m.Type != "test.kcat" || m.ContentType != "application/json" || m.CorrelationID != "corr-"+k ||
			!m.Time.Equal(time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)) || m.Headers["sb-attempt"] != "1" ||
			!strings.HasPrefix(m.Headers["app-header"], "v") || !strings.HasPrefix(string(m.Body), `{"n":`) {
			t.Errorf("from kcat: %+v", m)
		}
	}

	t.Logf("kcat's partitions by key: %v", kcatPart)

	// Switchboard -> kcat.
	var batch []*transport.Message
	for i, k := range keys {
		batch = append(batch, &transport.Message{ID: "sb-" + k, Key: k, Body: []byte("body-" + k), Type: "test.sb",
			ContentType: "text/plain", Headers: map[string]string{"app-header": "w" + strconv.Itoa(i)}, Time: time.Now()})
	}
	for _, m := range batch {
		send(t, tr, topic, m) // one Send each: keyed messages go by key
	}
	out := runKcat(t, kcat, "", "-C", "-b", bs, "-t", kafkaTopic, "-o", "beginning", "-e", "-q",
		"-f", "%k\t%p\t%h\t%s\n")
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || !strings.HasPrefix(f[3], "body-") {
			continue
		}
		seen++
		k, p := f[0], f[1]
		h := f[2]
		for _, want := range []string{"ce_id=sb-" + k, "ce_type=test.sb", "ce_specversion=1.0", "content-type=text/plain", "app-header=w"} {
			if !strings.Contains(h, want) {
				t.Errorf("kcat sees headers %q of %s, missing %q", h, k, want)
			}
		}
		if strconv.Itoa(kcatPart[k]) != p {
			t.Errorf("key %q: kcat put it on partition %d, Switchboard on %s", k, kcatPart[k], p)
		}
	}
	if seen != len(keys) {
		t.Errorf("kcat consumed %d Switchboard messages, want %d:\n%s", seen, len(keys), out)
	}
	// Switchboard's own consumer sees the same partitions too.
	for _, m := range recv(t, s, len(keys), true) {
		var km kafkago.Message
		m.AsFunc(&km)
		if km.Partition != kcatPart[m.Key] {
			t.Errorf("key %q: partition %d, kcat used %d", m.Key, km.Partition, kcatPart[m.Key])
		}
	}
}
