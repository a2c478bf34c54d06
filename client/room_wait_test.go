package client

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"cloakroom/internal/crypto"
)

func testRoom(t *testing.T) *room {
	t.Helper()
	secret, err := crypto.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	r := newRoom("ws://127.0.0.1:1/ws", secret, Options{Logger: slog.New(slog.DiscardHandler)}, nil)
	t.Cleanup(r.cancel)
	return r
}

// TestRoomAwaitWakesOnChange: a wait on the room wakes as soon as a member
// comes online (no polling interval), and gives up at its deadline.
func TestRoomAwaitWakesOnChange(t *testing.T) {
	r := testRoom(t)
	r.members["m1"] = &Member{ID: "m1"}
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.mu.Lock()
		r.members["m1"].Online = true
		r.changedLocked()
		r.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.await(ctx, time.Time{}, func() bool { return len(r.offline([]string{"m1"})) == 0 }); err != nil {
		t.Fatalf("await: %v", err)
	}
	start := time.Now()
	if err := r.await(ctx, start.Add(50*time.Millisecond), func() bool { return false }); err != nil {
		t.Fatalf("await to a deadline: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("await returned after %v, want its 50 ms deadline", d)
	}
	short, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if err := r.await(short, time.Time{}, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("await with an ended context: %v", err)
	}
	close(r.done)
	if err := r.await(ctx, time.Time{}, func() bool { return false }); !errors.Is(err, ErrClosed) {
		t.Fatalf("await on a closed room: %v, want ErrClosed", err)
	}
}
