package lists

import (
	"slices"
	"testing"
)

func TestLists(t *testing.T) {
	if got := Strings(" a, b,,c ,"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Strings: %q", got)
	}
	if got := Strings(" , "); got != nil {
		t.Errorf("an empty list: %q", got)
	}
	if got, err := Ints("resolutions", "224, 320"); err != nil || !slices.Equal(got, []int{224, 320}) {
		t.Errorf("Ints: %v, %v", got, err)
	}
	if _, err := Ints("resolutions", "224,2x4"); err == nil || err.Error() != `resolutions: "2x4" is not a number` {
		t.Errorf("a bad item: %v", err)
	}
	if got, err := Uint64s("seeds", "1,18446744073709551615"); err != nil || !slices.Equal(got, []uint64{1, 1<<64 - 1}) {
		t.Errorf("Uint64s: %v, %v", got, err)
	}
	if _, err := Uint64s("seeds", "-1"); err == nil {
		t.Error("a negative seed read")
	}
}
