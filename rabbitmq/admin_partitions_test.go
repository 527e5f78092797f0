package rabbitmq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/messaging"
)

// Admin (issue 14: "delete a topic's group ... purge one, on every
// transport") against a partitioned consumer group on RabbitMQ's default
// URL (<topic>~<group>~p0..p3 and ~members, issue 11): Inspect sums the
// partitions, Purge empties every partition, DeleteGroup deletes every
// queue of the group, and then every call fails with ErrNotFound.
func TestAdminPartitionedGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := "brk-adm-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		deleteAdminTestQueues(t, topic+"~g~p0", topic+"~g~p1", topic+"~g~p2", topic+"~g~p3", topic+"~g~members", topic+".g.dlq")
	})
	s, err := c.Subscribe(ctx, topic, "g", func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := c.Publish(ctx, topic, &messaging.Message{Key: string(rune('a' + i)), Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	a := c.Admin()
	info, err := a.Inspect(ctx, topic, "g")
	if err != nil {
		t.Fatalf("Inspect of an existing group: %v", err)
	}
	if info.Messages != 3 || info.Consumers != 0 {
		t.Errorf("Inspect = %+v, want 3 messages (over its partitions), 0 consumers", info)
	}
	if err := a.Purge(ctx, topic, "g"); err != nil {
		t.Fatalf("Purge of an existing group: %v", err)
	}
	if info, err := a.Inspect(ctx, topic, "g"); err != nil || info.Messages != 0 {
		t.Errorf("Inspect after Purge = %+v, %v; want 0 messages", info, err)
	}
	if err := a.DeleteGroup(ctx, topic, "g"); err != nil {
		t.Fatalf("DeleteGroup of an existing group: %v", err)
	}
	for _, q := range []string{"~g~p0", "~g~p1", "~g~p2", "~g~p3", "~g~members"} {
		if queueExists(t, topic+q) {
			t.Errorf("queue %s%s still exists after DeleteGroup", topic, q)
		}
	}
	if _, err := a.Inspect(ctx, topic, "g"); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("Inspect after DeleteGroup: %v, want ErrNotFound", err)
	}
	if err := a.Purge(ctx, topic, "g"); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("Purge after DeleteGroup: %v, want ErrNotFound", err)
	}
	if err := a.DeleteGroup(ctx, topic, "g"); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("DeleteGroup after DeleteGroup: %v, want ErrNotFound", err)
	}
}

// deleteAdminTestQueues deletes the test's queues with the raw client (whatever
// the test left).
func deleteAdminTestQueues(t *testing.T, names ...string) {
	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for _, n := range names {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, _ = ch.QueueDelete(n, false, false, false)
		ch.Close()
	}
}

// queueExists reports whether the queue exists, with a passive declare of
// the raw client.
func queueExists(t *testing.T, name string) bool {
	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
	return err == nil
}
