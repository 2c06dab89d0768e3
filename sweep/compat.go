package sweep

// The spec's compatibility layer: the rules sweeps started by earlier
// versions were validated by, which workflow code replaying or carrying
// them on must keep (workflows/compat.go holds the change IDs that choose
// between them). Records written before a field was kept are read by that
// field's zero value where the field is declared (outcome.go), not here:
// there is no other decoder to gather.
//
// Retiring: once no sweep started before change validation-rules-2 can
// still be running, validate(false)'s branches and ValidateAsRecorded go,
// with the change.

// ValidateAsRecorded is Validate as sweeps recorded before change
// validation-rules-2 ran it: it passed a TorchScript model with init
// torchvision (its combinations then failed at Prepare) and test
// resolutions up to 4096 (past MaxResolution they were skipped). Workflow
// code replaying such a sweep, or carrying it on, calls this.
func (s Spec) ValidateAsRecorded() error { return s.validate(false) }
