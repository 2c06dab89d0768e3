package activities

import (
	"bytes"
	"encoding/json"
	"io"
)

func jsonReader(v any) io.Reader {
	b, _ := json.MarshalIndent(v, "", "  ")
	return bytes.NewReader(b)
}
