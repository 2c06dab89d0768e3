package checkpoint

import "testing"

// Every name the layout builds parses back to the same reference, and
// nothing else parses: a key that round-trips is a checkpoint record.
func TestLayoutBuildsAndParsesEveryKey(t *testing.T) {
	combo := Combo{Prefix: "runs/0123456789abcdef", Family: "resnet", Model: "resnet18", Resolution: 224}
	for _, n := range []Name{EpochName(0), EpochName(3), EpochName(12345), MidName(0, 1), MidName(4, 150), BestName, FinalName} {
		ref := Ref{Combo: combo, Name: n}
		got, ok := ParseKey(ref.Key())
		if !ok || got != ref {
			t.Errorf("%s parsed as %+v (%v)", ref.Key(), got, ok)
		}
	}
	if k := (Ref{Combo: combo, Name: MidName(4, 150)}).Key(); k != "runs/0123456789abcdef/resnet/resnet18/224/mid_e0005_s000150.json" {
		t.Errorf("mid key %s: the name carries the 1-based epoch in progress", k)
	}
	noPrefix := Ref{Combo: Combo{Family: "cnn", Model: "smallcnn", Resolution: 16}, Name: EpochName(1)}
	if got, ok := ParseKey(noPrefix.Key()); !ok || got != noPrefix {
		t.Errorf("%s parsed as %+v (%v)", noPrefix.Key(), got, ok)
	}
	for _, bad := range []string{
		"runs/x/resnet/resnet18/224/latest.json",
		"runs/x/resnet/resnet18/224/epoch_0003.0123456789abcdef.safetensors",
		"runs/x/resnet/resnet18/224/epoch_3.json",
		"runs/x/resnet/resnet18/224/mid_e0000_s000010.json",
		"runs/x/resnet/resnet18/224/mid_e0001.json",
		"runs/x/resnet/resnet18/big/epoch_0003.json",
		"resnet18/224/epoch_0003.json",
		"results/abc.json",
	} {
		if ref, ok := ParseKey(bad); ok {
			t.Errorf("%s parsed as %+v", bad, ref)
		}
	}
}

// Training positions order checkpoints: a mid-epoch checkpoint is further
// along than the epoch before it and behind the epoch it is in.
func TestNamesOrderByTrainingPosition(t *testing.T) {
	order := []Name{EpochName(2), MidName(1, 20), MidName(1, 10), EpochName(1), MidName(0, 5)}
	for i := 0; i+1 < len(order); i++ {
		if !order[i].After(order[i+1]) || order[i+1].After(order[i]) {
			t.Errorf("%s should be after %s", order[i], order[i+1])
		}
	}
}
