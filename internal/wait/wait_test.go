package wait

import (
	"context"
	"testing"
	"time"
)

func TestSleepEndsEarly(t *testing.T) {
	if !Sleep(context.Background(), nil, time.Millisecond) {
		t.Error("Sleep of 1ms with nothing stopping it reported false")
	}
	done := make(chan struct{})
	close(done)
	if Sleep(context.Background(), done, time.Hour) {
		t.Error("Sleep with done closed reported true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, nil, time.Hour) {
		t.Error("Sleep with ctx ended reported true")
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := range 40 {
		want := min(50*time.Millisecond<<min(n, 30), 2*time.Second)
		if n > 30 {
			want = 2 * time.Second
		}
		for range 20 {
			d := Backoff(n, 50*time.Millisecond, 2*time.Second)
			if d < want/2 || d > want {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := Backoff(3, time.Second, 0); d != 0 {
		t.Errorf("Backoff with limit 0 = %v, want 0", d)
	}
}
