package pretrained

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// The legacy .pth format (torch.save before PyTorch 1.6, or with
// _use_new_zipfile_serialization=False; many published model zoos): five
// pickles in a row — the magic number, the protocol version, the system's
// type sizes, the object (its storages as persistent IDs), the storage
// keys in file order — then each storage's element count (int64, little
// endian) and its bytes, in that order.

// legacyMagic is torch.serialization's MAGIC_NUMBER.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// legacyProtocol is the only legacy protocol version torch writes.
const legacyProtocol = 1001

// isLegacyPth tells a legacy .pth by its first pickle: protocol 2, then
// the magic number as a LONG1 (0x80 0x02 0x8a 0x0a …).
func isLegacyPth(head []byte) bool {
	return len(head) >= 4 && head[0] == 0x80 && head[1] == 0x02 && head[2] == 0x8a && head[3] == 0x0a
}

// loadLegacyPth unpickles a legacy .pth held in data, every pickle
// scanned and every storage checked against the bytes that follow before
// anything it declares is allocated.
func loadLegacyPth(data []byte) (obj any, err error) {
	defer func() {
		if r := recover(); r != nil { // gopickle on a malformed pickle
			obj, err = nil, fmt.Errorf("%w: a legacy .pth that does not unpickle: %v", ErrFormat, r)
		}
	}()
	r := &legacyReader{data: data, storages: map[string]*legacyStorage{}, budget: memoryBudget(int64(len(data)))}
	magic, err := r.unpickle("magic number", nil)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("%w: a pickle, not a .pth (no torch.save magic number)", ErrFormat)
	}
	if v, err := r.unpickle("protocol version", nil); err != nil {
		return nil, err
	} else if n, ok := v.(int); !ok || n != legacyProtocol {
		// Never the value itself: references can make one of any size.
		return nil, fmt.Errorf("%w: a legacy .pth whose protocol version is a %T, not %d", ErrFormat, v, legacyProtocol)
	}
	if _, err := r.unpickle("system info", nil); err != nil {
		return nil, err
	}
	if obj, err = r.unpickle("object", r.load); err != nil {
		return nil, err
	}
	keys, err := r.unpickle("storage keys", nil)
	if err != nil {
		return nil, err
	}
	list, ok := keys.(*types.List)
	if !ok || list.Len() != len(r.storages) {
		return nil, fmt.Errorf("%w: a legacy .pth whose storage keys do not list its %d storages", ErrFormat, len(r.storages))
	}
	for i := range list.Len() {
		key, _ := list.Get(i).(string)
		if err := r.fill(key); err != nil {
			return nil, fmt.Errorf("%w: a damaged or truncated legacy .pth: storage %.64q: %v", ErrFormat, key, err)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(r.storages)) {
		if !r.storages[key].filled {
			return nil, fmt.Errorf("%w: a legacy .pth without the bytes of storage %.64q", ErrFormat, key)
		}
	}
	return obj, nil
}

// legacyReader walks a legacy .pth's bytes.
type legacyReader struct {
	data     []byte
	off      int
	storages map[string]*legacyStorage
	budget   uint64 // bytes of memory the storages may still take
}

// legacyStorage is a storage the object names, filled once its bytes are
// read (after the object's pickle, where they lie).
type legacyStorage struct {
	st       pytorch.StorageInterface
	numel    int
	fileElem uint64
	filled   bool
}

// unpickle reads the next pickle, scanned first; load, if any, resolves
// its persistent IDs.
func (r *legacyReader) unpickle(what string, load func(any) (any, error)) (any, error) {
	n, err := pickleLen(r.data[r.off:])
	if err != nil {
		return nil, fmt.Errorf("%w: a damaged or truncated legacy .pth: its %s: %v", ErrFormat, what, err)
	}
	u := pickle.NewUnpickler(bytes.NewReader(r.data[r.off : r.off+n]))
	u.FindClass = findTorchClass
	if load != nil {
		u.PersistentLoad = load
	}
	r.off += n
	v, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("%w: its %s: %v", ErrFormat, what, err)
	}
	return v, nil
}

// load is the object's persistent_load: ('storage', class, key, location,
// numel, view metadata). The storage is made here (empty, checked against
// the bytes left in the file and the memory budget) and filled later.
func (r *legacyReader) load(id any) (any, error) {
	sid, err := parseStorageID(id, 6)
	if err != nil {
		return nil, err
	}
	class, key, location, numel := sid.class, sid.key, sid.location, sid.numel
	if sid.view != nil {
		return nil, fmt.Errorf("storage %s: a view of another storage (written before PyTorch 0.4): load and save it again with a newer PyTorch", key)
	}
	if s, ok := r.storages[key]; ok {
		return s.st, nil
	}
	fileElem, memElem := elementSizes(class)
	switch left := uint64(len(r.data) - r.off); {
	case numel < 0:
		return nil, fmt.Errorf("storage %s: %d elements", key, numel)
	case uint64(numel) > left/fileElem:
		return nil, fmt.Errorf("storage %s declares %d elements of %d bytes, %d bytes remain in the file", key, numel, fileElem, left)
	case uint64(numel) > r.budget/memElem:
		return nil, fmt.Errorf("storage %s: %d elements take more memory than a file of this size can hold", key, numel)
	}
	r.budget -= uint64(numel) * memElem
	s := &legacyStorage{st: class.New(numel, location), numel: numel, fileElem: fileElem}
	r.storages[key] = s
	return s.st, nil
}

// fill reads the next storage's bytes into the storage of key.
func (r *legacyReader) fill(key string) error {
	s, ok := r.storages[key]
	if !ok || s.filled {
		return errors.New("not a storage the object names, or named twice")
	}
	if len(r.data)-r.off < 8 {
		return errors.New("cut short before its element count")
	}
	n := binary.LittleEndian.Uint64(r.data[r.off:])
	r.off += 8
	if n != uint64(s.numel) {
		return fmt.Errorf("%d elements where the object declared %d", n, s.numel)
	}
	size := n * s.fileElem
	if size > uint64(len(r.data)-r.off) {
		return fmt.Errorf("%d bytes, %d remain", size, len(r.data)-r.off)
	}
	if err := s.st.SetFromFileWithSize(bytes.NewReader(r.data[r.off:r.off+int(size)]), s.numel); err != nil {
		return err
	}
	r.off += int(size)
	s.filled = true
	return nil
}
