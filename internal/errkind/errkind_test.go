package errkind_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/resomap/resomap/internal/errkind"
)

func TestSentinelsCarryTheirKindThroughWrapping(t *testing.T) {
	bad := errkind.New(errkind.Invalid, "bad data")
	oom := errkind.New(errkind.OutOfMemory, "out of memory")
	wrapped := fmt.Errorf("epoch 3: %w", fmt.Errorf("image 7: %w: truncated", bad))
	if !errors.Is(wrapped, bad) || errkind.Of(wrapped) != errkind.Invalid || errors.Is(wrapped, errkind.OutOfMemory) {
		t.Fatalf("%v: sentinel %v, kind %v", wrapped, errors.Is(wrapped, bad), errkind.Of(wrapped))
	}
	if wrapped.Error() != "epoch 3: image 7: bad data: truncated" {
		t.Fatalf("message changed: %q", wrapped)
	}
	if errkind.Of(fmt.Errorf("step: %w", oom)) != errkind.OutOfMemory {
		t.Fatal("out of memory lost its kind")
	}
	if errkind.Of(errors.New("connection reset")) != nil || errkind.Of(nil) != nil {
		t.Fatal("a plain error has a kind")
	}
	if errors.Is(bad, errkind.New(errkind.Invalid, "bad data")) {
		t.Fatal("two sentinels with one message are one")
	}
}
