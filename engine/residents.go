package engine

import (
	"sync"

	"github.com/resomap/resomap/trainer"
)

// Residents keeps the training sessions of finished epochs in memory (a
// resident model), so that a combination's next epoch on this worker goes
// on without a download or restore. A session is found by its config hash
// and the key of the committed checkpoint it is at; anything else (another
// checkpoint is newer, another micro-batch after an out-of-memory back-off)
// drops it. At most max models are in memory, running ones included; the
// least recently used held one goes first.
type Residents struct {
	mu      sync.Mutex
	max     int
	running int
	held    []*resident // least recently used first
}

// NewResidents bounds a worker's models in memory to max: its concurrency.
func NewResidents(max int) *Residents { return &Residents{max: max} }

type resident struct {
	hash, key string
	micro     int
	s         *trainer.Session
}

// take returns the session of hash at checkpoint key, or nil; a held
// session of hash at another point is closed. A caller that gets nil and
// opens a session of its own calls reserve first.
func (r *Residents) take(hash, key string, micro int) *trainer.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, h := range r.held {
		if h.hash != hash {
			continue
		}
		r.held = append(r.held[:i], r.held[i+1:]...)
		if h.key == key && h.micro == micro {
			r.running++
			return h.s
		}
		h.s.Close()
		return nil
	}
	return nil
}

// reserve counts a session about to be opened as running, and closes the
// least recently used held ones until it fits under the bound.
func (r *Residents) reserve() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running++
	for len(r.held) > 0 && len(r.held)+r.running > max(r.max, 1) {
		r.held[0].s.Close()
		r.held = r.held[1:]
	}
}

// put holds s, at checkpoint key, after a clean epoch; with no room (or
// residents off) it is closed.
func (r *Residents) put(hash, key string, micro int, s *trainer.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running--
	if r.max <= 0 || key == "" {
		s.Close()
		return
	}
	for len(r.held) > 0 && len(r.held)+r.running >= r.max {
		r.held[0].s.Close()
		r.held = r.held[1:]
	}
	if len(r.held)+r.running >= r.max {
		s.Close()
		return
	}
	r.held = append(r.held, &resident{hash: hash, key: key, micro: micro, s: s})
}

// drop closes s (if any) after a failed or interrupted epoch, whose state
// is not a committed checkpoint's, and ends its running count.
func (r *Residents) drop(s *trainer.Session) {
	r.mu.Lock()
	r.running--
	r.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Count is the number of trainings held between epochs.
func (r *Residents) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held)
}

// Close frees every held training (worker shutdown).
func (r *Residents) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.held {
		h.s.Close()
	}
	r.held = nil
}
