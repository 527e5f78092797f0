package rabbitmq

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// TestConfirmNackBeforeCumulativeAck proves that a message the broker
// nacks is never reported sent when its basic.nack arrives ahead of an
// earlier message's basic.ack and a later cumulative basic.ack
// (multiple=true) covers its delivery tag. RabbitMQ does that when a
// quorum queue rejects a publish at once (its leader's node is down:
// reject_publish) while the channel's earlier publishes to other queues
// wait for their confirms; its cumulative ack only stops below the tags
// still unconfirmed and those nacked in the same flush, not those nacked
// before. amqp091-go's NotifyPublish stream then reports the nacked tag
// as acked (it holds the early nack back, to deliver confirms in tag
// order, and the cumulative ack overwrites it). This lost one confirmed
// message in some runs of TestCluster/NodeLoss (issue 17).
//
// A fake AMQP 0-9-1 broker, in process, answers the first confirm-mode
// channel's three publishes with nack(2), then ack(3, multiple=true); it
// acks every later publish at once. Send must republish message 2 (on a
// new channel) before it returns nil.
func TestConfirmNackBeforeCumulativeAck(t *testing.T) {
	fb := startFakeBroker(t)
	ctx := ctxT(t, 30*time.Second)
	tr, err := Open(ctx, "amqp://guest:guest@"+fb.addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	msgs := []*transport.Message{{ID: "a", Body: []byte("m1")}, {ID: "b", Body: []byte("m2")}, {ID: "c", Body: []byte("m3")}}
	if err := tr.Send(ctx, transport.Queue("q"), msgs); err != nil {
		t.Fatalf("send: %v", err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	for _, b := range []string{"m1", "m2", "m3"} {
		if !fb.acked[b] {
			t.Errorf("Send returned nil, but the broker never acked %s (acked: %v, nacked: %v)", b, fb.acked, fb.nacked)
		}
	}
	if !fb.nacked["m2"] {
		t.Errorf("the broker did not nack m2 (acked: %v, nacked: %v)", fb.acked, fb.nacked)
	}
}

// fakeBroker speaks just enough AMQP 0-9-1 for Open and Send: the
// handshake, channel.open/close, confirm.select, basic.publish; it
// answers publishes as described in TestConfirmNackBeforeCumulativeAck.
type fakeBroker struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	confirms int             // confirm-mode channels seen
	acked    map[string]bool // bodies the broker acked
	nacked   map[string]bool // bodies the broker nacked
}

func startFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBroker{ln: ln, acked: map[string]bool{}, nacked: map[string]bool{}}
	var conns sync.Map
	fb.wg.Add(1)
	go func() {
		defer fb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			fb.wg.Add(1)
			go func() {
				defer fb.wg.Done()
				defer c.Close()
				if err := fb.serve(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					t.Logf("fake broker: %v", err)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Range(func(c, _ any) bool { _ = c.(net.Conn).Close(); return true })
		fb.wg.Wait()
	})
	return fb
}

func (fb *fakeBroker) addr() string { return fb.ln.Addr().String() }

// fakeChan is the broker's state of one channel.
type fakeChan struct {
	confirm  bool
	script   bool     // the first confirm-mode channel: nack(2), ack(3, multiple)
	bodies   []string // published, in delivery-tag order
	bodySize uint64
	body     []byte
	inBody   bool
}

func (fb *fakeBroker) serve(c net.Conn) error {
	r := bufio.NewReader(c)
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return err
	}
	var wmu sync.Mutex
	send := func(ch uint16, class, method uint16, args []byte) error {
		p := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, class), method)
		p = append(p, args...)
		f := []byte{1}
		f = binary.BigEndian.AppendUint16(f, ch)
		f = binary.BigEndian.AppendUint32(f, uint32(len(p)))
		f = append(append(f, p...), 0xCE)
		wmu.Lock()
		defer wmu.Unlock()
		_, err := c.Write(f)
		return err
	}
	confirm := func(ch uint16, method uint16, tag uint64, multiple bool) error {
		a := binary.BigEndian.AppendUint64(nil, tag)
		var bits byte
		if multiple {
			bits = 1
		}
		return send(ch, 60, method, append(a, bits))
	}
	// connection.start: version 0-9, no server properties, PLAIN, en_US.
	start := []byte{0, 9, 0, 0, 0, 0}
	start = append(binary.BigEndian.AppendUint32(start, 5), "PLAIN"...)
	start = append(binary.BigEndian.AppendUint32(start, 5), "en_US"...)
	if err := send(0, 10, 10, start); err != nil {
		return err
	}
	chans := map[uint16]*fakeChan{}
	for {
		var fh [7]byte
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			return err
		}
		typ, ch, size := fh[0], binary.BigEndian.Uint16(fh[1:3]), binary.BigEndian.Uint32(fh[3:7])
		payload := make([]byte, size+1)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		payload = payload[:size]
		fc := chans[ch]
		switch typ {
		case 2: // content header: body size at bytes 4-12
			fc.bodySize = binary.BigEndian.Uint64(payload[4:12])
			fc.body = fc.body[:0]
			fc.inBody = true
			if fc.bodySize == 0 {
				fc.inBody = false
				if err := fb.published(fc, ch, "", confirm); err != nil {
					return err
				}
			}
			continue
		case 3: // content body
			fc.body = append(fc.body, payload...)
			if uint64(len(fc.body)) >= fc.bodySize && fc.inBody {
				fc.inBody = false
				if err := fb.published(fc, ch, string(fc.body), confirm); err != nil {
					return err
				}
			}
			continue
		case 8: // heartbeat
			continue
		}
		class, method := binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4])
		var err error
		switch {
		case class == 10 && method == 11: // start-ok: tune (channel-max 64, frame-max 128 KiB, no heartbeat)
			err = send(0, 10, 30, []byte{0, 64, 0, 2, 0, 0, 0, 0})
		case class == 10 && method == 31: // tune-ok
		case class == 10 && method == 40: // open: open-ok
			err = send(0, 10, 41, []byte{0})
		case class == 10 && method == 50: // close: close-ok
			_ = send(0, 10, 51, nil)
			return nil
		case class == 20 && method == 10: // channel.open: open-ok
			chans[ch] = &fakeChan{}
			err = send(ch, 20, 11, []byte{0, 0, 0, 0})
		case class == 20 && method == 40: // channel.close: close-ok
			delete(chans, ch)
			err = send(ch, 20, 41, nil)
		case class == 85 && method == 10: // confirm.select: select-ok
			fc.confirm = true
			fb.mu.Lock()
			fb.confirms++
			fc.script = fb.confirms == 1
			fb.mu.Unlock()
			err = send(ch, 85, 11, nil)
		case class == 60 && method == 40: // basic.publish: its content follows
		default:
			return fmt.Errorf("fake broker: unexpected method %d.%d", class, method)
		}
		if err != nil {
			return err
		}
	}
}

// published records a message published on fc and confirms it: on the
// scripted channel, after the third message, nack(2) then ack(3,
// multiple=true); elsewhere ack at once.
func (fb *fakeBroker) published(fc *fakeChan, ch uint16, body string, confirm func(uint16, uint16, uint64, bool) error) error {
	fc.bodies = append(fc.bodies, body)
	tag := uint64(len(fc.bodies))
	if !fc.confirm {
		return nil
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if !fc.script {
		fb.acked[body] = true
		return confirm(ch, 80, tag, false)
	}
	if tag < 3 {
		return nil
	}
	if tag == 3 {
		fb.nacked[fc.bodies[1]] = true
		if err := confirm(ch, 120, 2, false); err != nil {
			return err
		}
		fb.acked[fc.bodies[0]], fb.acked[fc.bodies[2]] = true, true
		return confirm(ch, 80, 3, true)
	}
	fb.acked[body] = true
	return confirm(ch, 80, tag, false)
}
