package pretrained

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// A .pth file comes from whoever wrote the sweep spec: nothing it declares
// is allocated before it is checked against the file. gopickle allocates
// what a pickle's lengths and a storage's element count say before it
// reads them (a 526-byte file made it allocate 512 MB, a larger claim is
// Go's fatal out-of-memory, a negative count a panic), so this loader
// scans the pickle's opcodes first (every length within the pickle),
// checks each storage's element count against its record, and bounds the
// memory all storages take by the file's size.

// memoryBudget is the memory a .pth of size bytes may take to read, for
// its storages and again for the tensors copied out of them: four times
// its size (float16 storages are read into float32, twice their bytes)
// and a megabyte.
func memoryBudget(size int64) uint64 { return 4*uint64(max(0, size)) + 1<<20 }

// loadPth unpickles torch.save's zip format from filename, a file of size
// bytes, checked as above.
func loadPth(filename string, size int64) (obj any, err error) {
	zr, err := zip.OpenReader(filename)
	if err != nil {
		return nil, fmt.Errorf("%w: a damaged or truncated .pth (zip): %v", ErrFormat, err)
	}
	defer zr.Close()
	records := map[string]*zip.File{}
	for _, f := range zr.File {
		records[path.Base(f.Name)] = f
	}
	if _, ok := records["constants.pkl"]; ok {
		return nil, fmt.Errorf("%w: a TorchScript archive (torch.jit.save): save model.state_dict() with torch.save", ErrFormat)
	}
	pkl, ok := records["data.pkl"]
	if !ok {
		return nil, fmt.Errorf("%w: a zip without data.pkl: not written by torch.save", ErrFormat)
	}
	data, err := readRecord(pkl, uint64(max(0, size)))
	if err != nil {
		return nil, err
	}
	if err := scanPickle(data); err != nil {
		return nil, fmt.Errorf("%w: data.pkl: %v", ErrFormat, err)
	}
	defer func() {
		if r := recover(); r != nil { // gopickle on a malformed pickle
			obj, err = nil, fmt.Errorf("%w: data.pkl does not unpickle: %v", ErrFormat, r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findTorchClass
	st := &storages{records: records, loaded: map[string]pytorch.StorageInterface{},
		budget: memoryBudget(size)}
	u.PersistentLoad = st.load
	return u.Load()
}

// readRecord reads a zip record whose declared size is at most limit.
func readRecord(f *zip.File, limit uint64) ([]byte, error) {
	if f.UncompressedSize64 > limit {
		return nil, fmt.Errorf("%w: %s declares %d bytes in a %d-byte file", ErrFormat, f.Name, f.UncompressedSize64, limit)
	}
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, f.Name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, int64(f.UncompressedSize64)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, f.Name, err)
	}
	return b, nil
}

// storages loads the tensor storages a pickle names, once each, checked.
type storages struct {
	records map[string]*zip.File
	loaded  map[string]pytorch.StorageInterface
	budget  uint64 // bytes of memory the storages may still take
}

// load is the unpickler's persistent_load: ('storage', class, key,
// location, numel).
func (s *storages) load(id any) (any, error) {
	sid, err := parseStorageID(id, 5)
	if err != nil {
		return nil, err
	}
	class, key, location, numel := sid.class, sid.key, sid.location, sid.numel
	if st, ok := s.loaded[key]; ok {
		return st, nil
	}
	rec, ok := s.records[key]
	if !ok {
		return nil, fmt.Errorf("storage %s: no such record in the zip", key)
	}
	if rec.Method != zip.Store {
		// torch.save stores records as they are; gopickle's reader takes a
		// short read of a compressed one for the end of its data.
		return nil, fmt.Errorf("storage %s: a compressed zip record (torch.save writes them stored; save the file again with torch.save)", key)
	}
	fileElem, memElem := elementSizes(class)
	switch {
	case numel < 0:
		return nil, fmt.Errorf("storage %s: %d elements", key, numel)
	case uint64(numel) > rec.UncompressedSize64/fileElem:
		return nil, fmt.Errorf("storage %s declares %d elements of %d bytes, its record holds %d bytes", key, numel, fileElem, rec.UncompressedSize64)
	case uint64(numel) > s.budget/memElem:
		return nil, fmt.Errorf("storage %s: %d elements take more memory than a file of this size can hold", key, numel)
	}
	s.budget -= uint64(numel) * memElem
	r, err := rec.Open()
	if err != nil {
		return nil, fmt.Errorf("storage %s: %v", key, err)
	}
	defer r.Close()
	st := class.New(numel, location)
	if err := st.SetFromFileWithSize(r, numel); err != nil {
		return nil, fmt.Errorf("storage %s: %v", key, err)
	}
	s.loaded[key] = st
	return st, nil
}

// storageID is a storage's persistent ID: ('storage', class, key,
// location, numel[, view metadata]).
type storageID struct {
	class         pytorch.StorageClassInterface
	key, location string
	numel         int
	view          any // the legacy format's sixth field (nil: no view)
}

// parseStorageID reads a persistent ID of n fields (5 in the zip format,
// 6 in the legacy one), never formatting its values: a pickle can make
// one of any size out of references to another.
func parseStorageID(id any, n int) (storageID, error) {
	bad := errors.New("a persistent ID that is not ('storage', class, key, location, numel[, view])")
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() != n {
		return storageID{}, bad
	}
	var s storageID
	kind, _ := t.Get(0).(string)
	var classOK, keyOK, locOK, numelOK bool
	s.class, classOK = t.Get(1).(pytorch.StorageClassInterface)
	s.key, keyOK = t.Get(2).(string)
	s.location, locOK = t.Get(3).(string)
	s.numel, numelOK = t.Get(4).(int)
	if kind != "storage" || !classOK || !keyOK || !locOK || !numelOK || len(s.key) > 64 || len(s.location) > 64 {
		return storageID{}, bad
	}
	if n > 5 {
		s.view = t.Get(5)
	}
	return s, nil
}

// elementSizes are a storage class's bytes per element in the file and in
// memory (gopickle reads half and bfloat16 into float32).
func elementSizes(c pytorch.StorageClassInterface) (file, mem uint64) {
	switch c.(type) {
	case *pytorch.DoubleStorageClass, *pytorch.LongStorageClass:
		return 8, 8
	case *pytorch.FloatStorageClass, *pytorch.IntStorageClass:
		return 4, 4
	case *pytorch.HalfStorageClass, *pytorch.BFloat16StorageClass:
		return 2, 4
	case *pytorch.ShortStorageClass:
		return 2, 2
	}
	return 1, 1 // char, byte, bool
}

// findTorchClass resolves the classes a state dict's pickle names: torch's
// tensor rebuild and storages (anything else, e.g. a whole pickled model's
// classes, stays a generic object that readPth refuses by name).
func findTorchClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	case "torch.FloatStorage":
		return &pytorch.FloatStorageClass{}, nil
	case "torch.HalfStorage":
		return &pytorch.HalfStorageClass{}, nil
	case "torch.BFloat16Storage":
		return &pytorch.BFloat16StorageClass{}, nil
	case "torch.DoubleStorage":
		return &pytorch.DoubleStorageClass{}, nil
	case "torch.LongStorage":
		return &pytorch.LongStorageClass{}, nil
	case "torch.IntStorage":
		return &pytorch.IntStorageClass{}, nil
	case "torch.ShortStorage":
		return &pytorch.ShortStorageClass{}, nil
	case "torch.CharStorage":
		return &pytorch.CharStorageClass{}, nil
	case "torch.ByteStorage":
		return &pytorch.ByteStorageClass{}, nil
	case "torch.BoolStorage":
		return &pytorch.BoolStorageClass{}, nil
	}
	return types.NewGenericClass(module, name), nil
}

// rebuildTensor is torch._utils._rebuild_tensor_v2, as gopickle's, but
// checked without formatting its arguments (gopickle prints them, and a
// pickle can make them of any size from references) and with at most
// maxDims dimensions.
type rebuildTensor struct{}

const maxDims = 64

func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) != 6 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 with %d arguments, want 6", len(args))
	}
	st, stOK := args[0].(pytorch.StorageInterface)
	offset, offOK := args[1].(int)
	size, sizeOK := args[2].(*types.Tuple)
	stride, strideOK := args[3].(*types.Tuple)
	grad, gradOK := args[4].(bool)
	if !stOK || !offOK || !sizeOK || !strideOK || !gradOK {
		return nil, errors.New("_rebuild_tensor_v2 with arguments of other types than torch.save writes")
	}
	t := &pytorch.Tensor{Source: st, StorageOffset: offset, RequiresGrad: grad}
	var err error
	if t.Size, err = smallInts(size); err != nil {
		return nil, fmt.Errorf("tensor size: %w", err)
	}
	if t.Stride, err = smallInts(stride); err != nil {
		return nil, fmt.Errorf("tensor stride: %w", err)
	}
	return t, nil
}

// smallInts is a tuple of at most maxDims ints.
func smallInts(t *types.Tuple) ([]int, error) {
	if t.Len() > maxDims {
		return nil, fmt.Errorf("%d dimensions (at most %d)", t.Len(), maxDims)
	}
	out := make([]int, t.Len())
	for i := range out {
		v, ok := t.Get(i).(int)
		if !ok {
			return nil, fmt.Errorf("element %d is a %T, want an int", i, t.Get(i))
		}
		out[i] = v
	}
	return out, nil
}

// errPickle is a pickle this reader does not take.
var errPickle = errors.New("malformed pickle")

// scanPickle walks a pickle's opcodes (protocols 0-5) before gopickle
// unpickles it, and refuses one that could make the unpickler allocate
// or print beyond the pickle's size: a length reaching past its end, an
// argument larger than a state dict holds, an opcode unknown to Python's
// pickle or one a state dict never uses, a class other than torch's tensor
// rebuild, OrderedDict and the storages (a whole pickled model is refused
// here, by name), or a stack the opcodes would misuse (a REDUCE of what is
// not such a class: gopickle prints the offending object, which references
// can make of any size). See pickleMachine.
func scanPickle(b []byte) error {
	_, err := pickleLen(b)
	return err
}

// pickleLen is scanPickle that says where the pickle ends (just after its
// STOP): a legacy .pth is several pickles and raw storages in a row.
func pickleLen(b []byte) (int, error) {
	var m pickleMachine
	for i := 0; i < len(b); {
		at, op := i, b[i]
		arg, next, err := opArg(b, at)
		if err != nil {
			return 0, err
		}
		i = next
		if err := m.step(op, arg); err != nil {
			return 0, fmt.Errorf("%w: opcode %q at %d: %v", errPickle, op, at, err)
		}
		if op == '.' { // STOP
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: no STOP opcode", errPickle)
}

// opArg reads the argument of the opcode at b[at] (lines: without their
// newlines, joined by one; a frame's: none, its bytes are opcodes to scan
// on) and where the next opcode begins.
func opArg(b []byte, at int) (arg []byte, next int, err error) {
	op, i := b[at], at+1
	switch {
	case noArg[op]:
		return nil, i, nil
	case fixedArg[op] > 0:
		if i+fixedArg[op] > len(b) {
			return nil, 0, fmt.Errorf("%w: opcode %q at %d: cut short", errPickle, op, at)
		}
		return b[i : i+fixedArg[op]], i + fixedArg[op], nil
	case lineArgs[op] > 0:
		from := i
		for range lineArgs[op] {
			n := bytes.IndexByte(b[i:], '\n')
			if n < 0 {
				return nil, 0, fmt.Errorf("%w: opcode %q at %d: unterminated argument", errPickle, op, at)
			}
			if n > maxLine {
				return nil, 0, fmt.Errorf("%w: opcode %q at %d: an argument of %d bytes (at most %d in a state dict)", errPickle, op, at, n, maxLine)
			}
			i += n + 1
		}
		return b[from : i-1], i, nil
	case lengthArg[op] > 0:
		return lengthPrefixed(b, at)
	}
	return nil, 0, fmt.Errorf("%w: unknown opcode 0x%02x at %d", errPickle, op, at)
}

// lengthPrefixed reads the argument of the length-prefixed opcode at b[at].
func lengthPrefixed(b []byte, at int) (arg []byte, next int, err error) {
	op, i := b[at], at+1
	w := lengthArg[op]
	if i+w > len(b) {
		return nil, 0, fmt.Errorf("%w: opcode %q at %d: cut short", errPickle, op, at)
	}
	var n uint64
	switch w {
	case 1:
		n = uint64(b[i])
	case 4:
		n = uint64(binary.LittleEndian.Uint32(b[i:]))
	case 8:
		n = binary.LittleEndian.Uint64(b[i:])
	}
	i += w
	if n > uint64(len(b)-i) {
		return nil, 0, fmt.Errorf("%w: opcode %q at %d declares %d bytes, %d remain", errPickle, op, at, n, len(b)-i)
	}
	if op == opFrame { // a frame's bytes are opcodes: scan on inside it
		return nil, i, nil
	}
	if limit := argLimit[op]; n > limit {
		// A state dict's pickle holds names and small ints; big ones
		// only cost (a long integer decodes in quadratic time).
		return nil, 0, fmt.Errorf("%w: opcode %q at %d: an argument of %d bytes (at most %d in a state dict)", errPickle, op, at, n, limit)
	}
	return b[i : i+int(n)], i + int(n), nil
}

// pickleMachine runs a pickle's opcodes on the kinds of its values, not
// the values: what a state dict's pickle does, and nothing else.
type pickleMachine struct {
	stack []pickleKind
	marks []int
	memo  map[uint64]pickleKind
	next  uint64 // MEMOIZE's next index
}

type pickleKind uint8

const (
	kindValue       pickleKind = iota // a value (bytes, tuple, list, tensor, ...)
	kindEmptyTuple                    // (), OrderedDict's arguments
	kindDict                          // a dict: SETITEM(S) target
	kindRebuild                       // torch._utils._rebuild_tensor_v2
	kindOrderedDict                   // collections.OrderedDict
	kindStorage                       // a storage class, named in persistent IDs
	kindODict                         // an OrderedDict(): SETITEM(S) and BUILD target
	kindScalar                        // None, a bool, a number
	kindString                        // a str
)

// isDictKey: a dict key must be a str or a scalar (optimiser states key
// by int). A container key is refused: gopickle prints a key it cannot
// use (%#v), and a tuple of references to one large bytes object prints
// to any size.
func isDictKey(k pickleKind) bool { return k == kindString || k == kindScalar }

// maxMarks bounds nesting: each MARK costs the unpickler a stack.
const maxMarks = 64

func (m *pickleMachine) push(k pickleKind) { m.stack = append(m.stack, k) }

func (m *pickleMachine) pop(n int) ([]pickleKind, error) {
	floor := 0
	if len(m.marks) > 0 {
		floor = m.marks[len(m.marks)-1]
	}
	if len(m.stack)-n < floor {
		return nil, errors.New("the stack runs short")
	}
	out := m.stack[len(m.stack)-n:]
	m.stack = m.stack[:len(m.stack)-n]
	return out, nil
}

// popMark pops everything above the last MARK, and the MARK.
func (m *pickleMachine) popMark() (int, error) {
	kinds, err := m.popMarkKinds()
	return len(kinds), err
}

// popMarkKinds is popMark that returns the kinds popped, in stack order.
func (m *pickleMachine) popMarkKinds() ([]pickleKind, error) {
	if len(m.marks) == 0 {
		return nil, errors.New("no MARK")
	}
	at := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	out := m.stack[at:]
	m.stack = m.stack[:at]
	return out, nil
}

// checkItems checks the key, value pairs of SETITEM(S) or DICT.
func checkItems(kinds []pickleKind) error {
	if len(kinds)%2 != 0 {
		return errors.New("a dict's items that are no key, value pairs")
	}
	for i := 0; i < len(kinds); i += 2 {
		if !isDictKey(kinds[i]) {
			return errors.New("a dict key that is no str nor number")
		}
	}
	return nil
}

func (m *pickleMachine) top() (pickleKind, error) {
	if len(m.stack) == 0 || len(m.marks) > 0 && len(m.stack) == m.marks[len(m.marks)-1] {
		return 0, errors.New("nothing on the stack")
	}
	return m.stack[len(m.stack)-1], nil
}

// memoIndex reads a PUT/GET argument.
func memoIndex(op byte, arg []byte) (uint64, error) {
	switch op {
	case 'q', 'h':
		return uint64(arg[0]), nil
	case 'r', 'j':
		return uint64(binary.LittleEndian.Uint32(arg)), nil
	}
	return strconv.ParseUint(string(arg), 10, 63) // 'p', 'g': a decimal line
}

// torchClasses are the classes a state dict's pickle names.
var torchClasses = map[string]pickleKind{
	"torch._utils\n_rebuild_tensor_v2": kindRebuild,
	"collections\nOrderedDict":         kindOrderedDict,
}

// pushes are the opcodes that push one value of a kind and take none.
var pushes = func() map[byte]pickleKind {
	p := map[byte]pickleKind{')': kindEmptyTuple, '}': kindDict, 'P': kindValue}
	for _, op := range []byte{'N', 0x88, 0x89, 'I', 'J', 'K', 'M', 'L', 0x8a, 0x8b, 'F', 'G'} {
		p[op] = kindScalar // None, bools, numbers
	}
	for _, op := range []byte{'S', 'T', 'U', 'V', 'X', 0x8c, 0x8d} {
		p[op] = kindString
	}
	for _, op := range []byte{'B', 'C', 0x8e, 0x96, ']', 0x8f} {
		p[op] = kindValue // bytes, bytearray, empty list and set
	}
	return p
}()

func (m *pickleMachine) step(op byte, arg []byte) error {
	if m.memo == nil {
		m.memo = map[uint64]pickleKind{}
	}
	if k, ok := pushes[op]; ok {
		m.push(k)
		return nil
	}
	switch op {
	case 0x80, opFrame: // PROTO, FRAME
		return nil
	case '(', '0', '1', '2':
		return m.stackOp(op)
	case 'c':
		return m.global(string(arg))
	case 't', 0x85, 0x86, 0x87, 'l', 0x91, 'd', 'a', 'e', 0x90, 's', 'u':
		return m.container(op)
	case 'Q', 'R', 'b':
		return m.call(op)
	case 'p', 'q', 'r', 0x94, 'g', 'h', 'j':
		return m.memoOp(op, arg)
	case '.':
		if len(m.stack) != 1 || len(m.marks) != 0 {
			return errors.New("STOP with other than one value on the stack")
		}
		return nil
	}
	// INST, OBJ, NEWOBJ(_EX), STACK_GLOBAL, EXT1-4, buffers: never in a
	// state dict torch.save writes (protocol 2).
	return errors.New("an opcode no state dict's pickle uses")
}

// stackOp runs MARK, POP, POP_MARK and DUP.
func (m *pickleMachine) stackOp(op byte) error {
	switch op {
	case '(':
		if len(m.marks) >= maxMarks {
			return fmt.Errorf("nested more than %d deep", maxMarks)
		}
		m.marks = append(m.marks, len(m.stack))
	case '0':
		_, err := m.pop(1)
		return err
	case '1':
		_, err := m.popMark()
		return err
	case '2':
		k, err := m.top()
		if err == nil {
			m.push(k)
		}
		return err
	}
	return nil
}

// global runs GLOBAL: only the classes a state dict's pickle names.
func (m *pickleMachine) global(name string) error {
	k, ok := torchClasses[name]
	if !ok && strings.HasPrefix(name, "torch\n") && strings.HasSuffix(name, "Storage") {
		k, ok = kindStorage, true
	}
	if !ok {
		return fmt.Errorf("class %s: not one a state dict holds (a whole pickled model? save model.state_dict())", strings.ReplaceAll(name, "\n", "."))
	}
	m.push(k)
	return nil
}

// container runs the opcodes that build tuples, lists, sets and dicts.
func (m *pickleMachine) container(op byte) error {
	switch op {
	case 't':
		n, err := m.popMark()
		if err == nil {
			m.push(map[bool]pickleKind{true: kindEmptyTuple, false: kindValue}[n == 0])
		}
		return err
	case 0x85, 0x86, 0x87: // TUPLE1-3
		_, err := m.pop(int(op - 0x84))
		m.push(kindValue)
		return err
	case 'l', 0x91: // LIST, FROZENSET
		_, err := m.popMark()
		m.push(kindValue)
		return err
	case 'd':
		kinds, err := m.popMarkKinds()
		if err == nil {
			err = checkItems(kinds)
		}
		m.push(kindDict)
		return err
	case 'a':
		_, err := m.pop(1)
		return err
	case 'e', 0x90: // APPENDS, ADDITEMS
		_, err := m.popMark()
		return err
	}
	return m.setItems(op)
}

// setItems runs SETITEM(S): items onto a dict.
func (m *pickleMachine) setItems(op byte) error {
	var items []pickleKind
	var err error
	if op == 's' {
		items, err = m.pop(2)
	} else {
		items, err = m.popMarkKinds()
	}
	if err == nil {
		err = checkItems(items)
	}
	if err != nil {
		return err
	}
	if k, err := m.top(); err != nil || k != kindDict && k != kindODict {
		return errors.New("items set on what is not a dict")
	}
	return nil
}

// call runs BINPERSID (a storage from its persistent ID), REDUCE (torch's
// tensor rebuild or OrderedDict()) and BUILD (an OrderedDict's state).
func (m *pickleMachine) call(op byte) error {
	switch op {
	case 'Q':
		_, err := m.pop(1)
		m.push(kindValue)
		return err
	case 'R':
		args, err := m.pop(2)
		if err != nil {
			return err
		}
		switch {
		case args[0] == kindRebuild:
			m.push(kindValue)
		case args[0] == kindOrderedDict && args[1] == kindEmptyTuple:
			m.push(kindODict)
		default:
			return errors.New("a call of what is not torch's tensor rebuild nor OrderedDict()")
		}
		return nil
	}
	// BUILD: an OrderedDict's state (its _metadata), a dict.
	state, err := m.pop(1)
	if err != nil {
		return err
	}
	if state[0] != kindDict {
		return errors.New("a state that is no dict")
	}
	if k, err := m.top(); err != nil || k != kindODict {
		return errors.New("state set on what is not an OrderedDict")
	}
	return nil
}

// memoOp runs PUT, BINPUT, LONG_BINPUT, MEMOIZE and GET, BINGET,
// LONG_BINGET.
func (m *pickleMachine) memoOp(op byte, arg []byte) error {
	switch op {
	case 'p', 'q', 'r', 0x94:
		k, err := m.top()
		if err != nil {
			return err
		}
		idx := m.next
		if op != 0x94 {
			if idx, err = memoIndex(op, arg); err != nil {
				return err
			}
		} else {
			m.next++
		}
		m.memo[idx] = k
		return nil
	}
	idx, err := memoIndex(op, arg)
	if err != nil {
		return err
	}
	k, ok := m.memo[idx]
	if !ok {
		return fmt.Errorf("memo %d was never put", idx)
	}
	m.push(k)
	return nil
}

const opFrame = 0x95

// The largest arguments a state dict's pickle holds: names (module paths,
// parameter names) and small integers.
const (
	maxName = 1 << 16
	maxInt  = 64 // bytes of a LONG1/LONG4: int64 and then some
	maxLine = 1 << 12
)

// argLimit bounds each length-prefixed opcode's argument.
var argLimit = map[byte]uint64{'U': maxName, 'C': maxName, 0x8c: maxName, 'T': maxName, 'X': maxName, 'B': maxName,
	0x8d: maxName, 0x8e: maxName, 0x96: maxName, 0x8a: maxInt, 0x8b: maxInt}

// Python's pickle opcodes by the argument they take (pickletools).
var (
	noArg     = [256]bool{}
	fixedArg  = [256]int{}
	lineArgs  = [256]int{}
	lengthArg = [256]int{}
)

func init() {
	for _, op := range []byte(".(012Nab}del]ost)uRQ") {
		noArg[op] = true // STOP, MARK, POP, POP_MARK, DUP, NONE, APPEND, BUILD, EMPTY_DICT, DICT, APPENDS, LIST, EMPTY_LIST, OBJ, SETITEM, TUPLE, EMPTY_TUPLE, SETITEMS, REDUCE, BINPERSID
	}
	for _, op := range []byte{0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98} {
		noArg[op] = true // NEWOBJ, TUPLE1-3, NEWTRUE/FALSE, EMPTY_SET, ADDITEMS, FROZENSET, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE, NEXT_BUFFER, READONLY_BUFFER
	}
	for op, n := range map[byte]int{'J': 4, 'K': 1, 'M': 2, 'G': 8, 'h': 1, 'j': 4, 'q': 1, 'r': 4, 0x82: 1, 0x83: 2, 0x84: 4, 0x80: 1} {
		fixedArg[op] = n // BININT(1,2), BINFLOAT, (LONG_)BINGET, (LONG_)BINPUT, EXT1/2/4, PROTO
	}
	for _, op := range []byte("ILSVFgpP") {
		lineArgs[op] = 1 // INT, LONG, STRING, UNICODE, FLOAT, GET, PUT, PERSID
	}
	lineArgs['c'], lineArgs['i'] = 2, 2 // GLOBAL, INST: module and name
	for op, n := range map[byte]int{'U': 1, 'C': 1, 0x8c: 1, 0x8a: 1, 'T': 4, 'X': 4, 'B': 4, 0x8b: 4, 0x8d: 8, 0x8e: 8, 0x96: 8, opFrame: 8} {
		lengthArg[op] = n // SHORT_BINSTRING/BINBYTES/BINUNICODE, LONG1, BINSTRING, BINUNICODE, BINBYTES, LONG4, BINUNICODE8, BINBYTES8, BYTEARRAY8, FRAME
	}
}
