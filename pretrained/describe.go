package pretrained

import (
	"math/big"
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
	ts, top, err := read(path)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Tensors: len(ts), Scalars: map[string]any{}}
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
