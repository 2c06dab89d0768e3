package pretrained

import (
	"bytes"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// Summary is what a weights file holds: how many tensors (as Read gives
// them) and, for a checkpoint dict (the Python tool's {'model_state_dict',
// 'epoch', 'val_accuracy', …}), its top-level numbers and strings.
type Summary struct {
	Tensors int
	Scalars map[string]any // int64, float64, string or bool
}

// Describe reads path as Read does and summarises it.
func Describe(path string) (Summary, error) {
	ts, err := Read(path)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Tensors: len(ts), Scalars: map[string]any{}}
	head := make([]byte, 4)
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	_, err = f.Read(head)
	f.Close()
	if err != nil {
		return s, err
	}
	var load func(string, int64) (any, error)
	switch {
	case bytes.Equal(head, []byte("PK\x03\x04")):
		load = loadPth
	case isLegacyPth(head):
		load = func(path string, size int64) (any, error) {
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			return loadLegacyPth(data)
		}
	default:
		return s, nil // safetensors: tensors only
	}
	fi, err := os.Stat(path)
	if err != nil {
		return s, err
	}
	top, err := loadTopDict(path, fi.Size(), load)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range top {
		switch v := v.(type) {
		case int, int64, float64, bool:
			s.Scalars[k] = v
		case *big.Int:
			if v.IsInt64() {
				s.Scalars[k] = v.Int64()
			}
		case string:
			s.Scalars[k] = strings.ToValidUTF8(v[:min(len(v), 200)], "?")
		}
	}
	return s, nil
}
