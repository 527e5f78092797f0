package kafka_test

import (
	"testing"

	"github.com/switchboard-go/switchboard/transport"
)

// TestDeliveryCountSurvivesMembers proves the emulated delivery count: a
// message that its consumers never acknowledge (each leaves, as a crashed
// process would, without acking) is reported with a count one higher to
// each next member of the group, so that package messaging can stop a
// crash loop at MaxAttempts. A later message is a first delivery.
func TestDeliveryCountSurvivesMembers(t *testing.T) {
	topic, group := transport.Topic(unique("dc")), "g"
	pub := openT(t)
	if !pub.Capabilities().DeliveryCount {
		t.Fatal("Capabilities.DeliveryCount is false")
	}
	first := openT(t)
	s := subscribe(t, first, topic, group)
	send(t, pub, topic, msg("m1", "k", "poison"), msg("m2", "k", "next"))
	got := recv(t, s, 1, false)
	if got[0].ID != "m1" || got[0].DeliveryCount != 1 {
		t.Fatalf("first delivery: %s count %d, want m1 count 1", got[0].ID, got[0].DeliveryCount)
	}
	_ = s.Close()
	_ = first.Close()
	for want := 2; want <= 4; want++ {
		tr := openT(t)
		s := subscribe(t, tr, topic, group)
		got := recv(t, s, 1, false)
		if got[0].ID != "m1" || got[0].DeliveryCount != want {
			t.Fatalf("delivery to member %d: %s count %d, want m1 count %d", want, got[0].ID, got[0].DeliveryCount, want)
		}
		_ = s.Close()
		_ = tr.Close()
	}
	tr := openT(t)
	s = subscribe(t, tr, topic, group)
	got = recv(t, s, 2, true)
	if got[0].ID != "m1" || got[0].DeliveryCount != 5 || got[1].ID != "m2" || got[1].DeliveryCount != 1 {
		t.Fatalf("got %s count %d, %s count %d; want m1 count 5, m2 count 1",
			got[0].ID, got[0].DeliveryCount, got[1].ID, got[1].DeliveryCount)
	}
}
