package engine

import (
	"context"
	"strings"
	"testing"
)

// An epoch without a hook it needs is refused before anything is reserved
// or accounted (found mid-run, it would leave both open).
func TestAnEpochWithoutItsHooksIsRefused(t *testing.T) {
	e := &Engine{Residents: NewResidents(1)}
	_, err := e.TrainEpoch(context.Background(), nil, Epoch{FromResident: true})
	if err == nil || !strings.Contains(err.Error(), "engine: an Epoch without") {
		t.Fatalf("an epoch without hooks: %v", err)
	}
	if e.device.users != nil || e.Residents.running != 0 {
		t.Fatalf("refused, yet the device's accounting started (%v) or a model was reserved (%d)", e.device.users, e.Residents.running)
	}
}
